"""Custom DeepEval metrics as a user's package would provide them (loaded by `type: custom, class: ...`)."""
