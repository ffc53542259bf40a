"""Dashboard widgets: loss chart, ranking table, event log."""

from lensllm_tui.widgets.event_log import EventLog
from lensllm_tui.widgets.loss_chart import LossChart
from lensllm_tui.widgets.ranking import RankingTable

__all__ = ["EventLog", "LossChart", "RankingTable"]
