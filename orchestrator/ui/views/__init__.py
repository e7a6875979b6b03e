"""The UI's pages, by what they show: runs, deployments and queues, and the user's own things."""
