"""The yunshang operator: `python -m yunshang.operator` (or `yunshang operator run`)."""
