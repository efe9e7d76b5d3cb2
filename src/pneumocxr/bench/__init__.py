"""Speed measurements (`pneumocxr bench`): layer 4, beside evaluation; uses the training and
prediction code itself, not copies of it."""
