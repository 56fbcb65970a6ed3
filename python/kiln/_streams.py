"""Keeping torch's current CUDA stream equal to the session's stream while a
Python plugin's forward runs, so that Triton and torch work inside forward
lands on the stream kiln runs on (also during CUDA graph capture).

The C bridge calls use_stream(handle, device) before each forward on a GPU.
It costs one cheap query when the stream is already current, which is the
usual case: a session keeps using one stream."""
_external = {}   # (handle, device) -> torch.cuda.ExternalStream, kept alive


def use_stream(handle, device):
    import torch
    if torch._C._cuda_getCurrentRawStream(device) == handle:
        return
    key = (handle, device)
    stream = _external.get(key)
    if stream is None:
        stream = (torch.cuda.default_stream(device) if handle == 0
                  else torch.cuda.ExternalStream(handle, device=torch.device("cuda", device)))
        if len(_external) > 64:
            _external.clear()
        _external[key] = stream
    torch.cuda.set_stream(stream)


def install(native):
    try:
        import torch
        if not torch.cuda.is_available():
            return
    except ImportError:
        return
    native._set_stream_hook(use_stream)
