"""``bench report``: the paper's tables and figures from the result records (see ``build``)."""
from eval.report.build import build_report

__all__ = ["build_report"]
