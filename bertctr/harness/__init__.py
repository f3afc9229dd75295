"""The harness: how the demo, the benchmarks and the integration tests run bertctr.

One home for starting and stopping real parts (:mod:`~bertctr.harness.procs`),
the embedded broker and Redis (:mod:`~bertctr.harness.stack`), the encoder
server on Triton (:mod:`~bertctr.harness.encoders`), workers in their own
namespace (:mod:`~bertctr.harness.workers`) and publishing to and reading
from Kafka as an outside producer would (:mod:`~bertctr.harness.kafka`), and
the HTTP API as a process (:mod:`~bertctr.harness.api`).
It sits in the app layer: it starts ``bertctr`` commands as processes, and
nothing below the app imports it.
"""
