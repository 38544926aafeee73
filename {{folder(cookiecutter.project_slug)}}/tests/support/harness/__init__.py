"""The guards around every test: a hang, a leak or a stalled loop fails the test it happened in, by name.

A pytest plugin (listed in conftest.py's `pytest_plugins`), one module per
concern; nothing in it is specific to this service:

- loops.py: which event loops the guards watch (every loop conftest.py's
  `pytest_asyncio_loop_factories` hook chooses).
- hangs.py: a time limit on each phase of a test (setup, call, teardown):
  past it, the stuck tasks are cancelled and the test fails with where they
  waited. `@pytest.mark.timeout(N)` sets the limit.
- stalls.py: one step of the loop costing more than LOOP_STEP_LIMIT of CPU
  time fails the test with the stack that held the loop; a step that never
  ends is interrupted at the test's time limit. `@pytest.mark.loop_step_limit`
  raises the limit for one test.
- leaks.py: a task, a thread or an unclosed resource that outlives its test
  fails that test.
- hints.py: a hint beside failures whose cause the message alone hides.

Its state lives on `config.stash` and `item.stash`. tests/test_harness.py
proves each guard on a planted fault, in a pytest run of its own.
"""

pytest_plugins = [
    "tests.support.harness.loops",
    "tests.support.harness.hangs",
    "tests.support.harness.stalls",
    "tests.support.harness.leaks",
    "tests.support.harness.hints",
]
