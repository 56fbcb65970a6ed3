/* device_service.h — the runtime's side of kiln_device_service (kiln/plugin.h). */
#ifndef KILN_RUNTIME_DEVICE_SERVICE_H
#define KILN_RUNTIME_DEVICE_SERVICE_H

#include "backend/backend.h"
#include "kiln/plugin.h"

/* Fill svc with calls that run on backend's device `device`. */
void kiln_device_service_init(kiln_device_service *svc, const kiln_backend_iface *backend, kiln_device device);

#endif
