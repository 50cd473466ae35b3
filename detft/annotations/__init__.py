"""The one in-memory dataset model and what is known about it: the records every reader produces and every writer
consumes, their geometry and images, the checks that repair them, and the report of every change."""
