from app.db.base import Base
from app.db.tables import Job, JudgeCall, JudgmentItem, ModelRecord, Template

__all__ = ["Base", "Job", "JudgeCall", "JudgmentItem", "ModelRecord", "Template"]
