"""The static HTML report of a run or of an evaluate comparison (``mmfuse report``, ``run --html-report``)."""
