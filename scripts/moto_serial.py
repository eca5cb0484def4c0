"""Starts the moto AWS API emulator on HOST PORT, handling one request at a time.

moto's own `moto_server` answers on several threads without locking its backends, so two
conditional writes racing on one DynamoDB item can both succeed there; real DynamoDB evaluates
conditions atomically. Serving one request at a time restores that guarantee for our tests
(clients still race: their read-modify-write cycles interleave).
"""

import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False, use_reloader=False)
