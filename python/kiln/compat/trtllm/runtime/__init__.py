"""tensorrt_llm.runtime spellings: Session, TensorInfo."""
from ....runtime import Session, TensorInfo
from . import session

__all__ = ["Session", "TensorInfo", "session"]
