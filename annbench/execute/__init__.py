"""plan → measurements → stored results: tasks, timing, evaluation, isolated children, executors."""
