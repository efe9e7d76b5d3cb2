"""Files: atomic writes, folders, the formats pneumocxr writes, outputs that must not replace
what the user made. Below every other layer but the task's constants and the errors; knows
nothing of images or models."""
