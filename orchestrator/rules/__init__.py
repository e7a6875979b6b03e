"""The rules engine: decides what happens to a proposed state.

Map of one proposal (see `orchestrator.rules.engine.orchestrate`):
1. The service locks the run and builds an `OrchestrationContext` (current state, proposal).
2. The policy's rules whose FROM_STATES/TO_STATES match the transition run their
   `before_transition` in order; the first to answer (reject, delay, abort) ends the pass.
3. If a state is to be written, the bookkeeping transforms stamp it and update the run.
4. Entered rules run `after_transition` if their premise still holds, else `cleanup`.

No HTTP, no Celery, no SDK here: rules read and write ORM rows only.
"""
