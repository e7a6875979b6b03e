"""The run engine: how a call of a flow or task becomes an orchestrated run.

Map of a task run (`task_engine.TaskRunEngine`; flows follow the same shape in
`flow_engine.FlowRunEngine`):
1. create   the run is created Pending (at call or submit time, in the caller).
2. inputs   futures among the arguments resolve to their results; a failed
            upstream makes the run NotReady instead of running it.
3. start    propose Running: the orchestrator may accept, answer WAIT (sleep and
            propose again), reject to Cached (done, no call) or abort.
4. call     the user's function runs in the run's context, under its timeout.
5. finish   propose Completed with the persisted result, or Failed with the
            exception; a rejection to AwaitingRetry goes back to step 3.

Steps are written once, as a generator (`steps()`) that yields what to do with
the user's code: `Call` it, or `Sleep`. `driver.run_sync` and
`driver.run_async` carry the instructions out in a thread or on an event loop.
"""
