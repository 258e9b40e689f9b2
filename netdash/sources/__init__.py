"""One module per kernel or system source. Plain functions returning `netdash.model` records.

Nothing here imports Textual or sleeps: the engine calls these in worker threads.
"""
