"""The models of the files the evaluator writes, by file; `evaluator.contract` is where callers import them."""
