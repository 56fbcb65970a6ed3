"""tensorrt_llm.runtime.session spellings: Session, TensorInfo."""
from ....runtime import Session, TensorInfo

__all__ = ["Session", "TensorInfo"]
