"""``python -m scripts.local_stack.offline_model``: the offline model on its own (see the package's docstring)."""

from scripts.local_stack.offline_model import main

main()
