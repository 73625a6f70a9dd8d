"""Date windows of the incremental resources: a back-fill from `history_start` on the first run,
then from the last window's end minus `lookback_days` (late payments and balance changes)."""

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Window:
    """`from_date` to `to_date`, both days included (ISO dates, the API's parameters)."""

    from_date: date
    to_date: date


def windows(
    reached: date | None, today: date, history_start: date, window_days: int, lookback_days: int
) -> list[Window]:
    """The windows from `history_start` (nothing reached yet) or `reached - lookback_days` up to
    `today`, each at most `window_days` days long; never before `history_start`."""
    start = (
        history_start if reached is None else max(history_start, reached - timedelta(lookback_days))
    )
    result = []
    while start <= today:
        end = min(today, start + timedelta(days=window_days - 1))
        result.append(Window(start, end))
        start = end + timedelta(days=1)
    return result
