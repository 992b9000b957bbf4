"""Application use cases that handlers, jobs, the command line and the sandbox all call.

The weekly runs, delivery through an outbox, scheduling. Only `services.telegram` imports
python-telegram-bot: it implements the outbox over PTB's Bot and the scheduler over its JobQueue.
"""
