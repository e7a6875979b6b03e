"""Tag concurrency limits: at most N task runs carrying a tag run at once, across every worker and host."""
