"""Keeping torch's current CUDA stream equal to the session's stream while a
Python plugin's forward runs, so that Triton and torch work inside forward
lands on the stream kiln runs on (also during CUDA graph capture).

Before each forward on a GPU the C bridge asks torch for its current raw
stream (one C call) and calls use_stream(handle, device) only when that is
not the session's stream; a session usually keeps one stream, so the usual
case runs no Python."""
_external = {}   # (handle, device) -> torch.cuda.ExternalStream, kept alive


def _current_raw_stream(torch):
    """torch's own query (what Triton uses), else the public spelling."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw or (lambda device: torch.cuda.current_stream(device).cuda_stream)


def use_stream(handle, device):
    """Make `handle` torch's current stream on `device` (the bridge has found
    it is not)."""
    import torch
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
    native._set_stream_hook(use_stream, _current_raw_stream(torch))
