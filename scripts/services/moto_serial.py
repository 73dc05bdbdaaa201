"""moto_server answering one request at a time.

`scripts/services/10-moto.sh` starts moto through this instead of the `moto_server` command.
moto's server handles requests on concurrent threads, but its DynamoDB TransactWriteItems is
not atomic across threads: it snapshots the whole table, checks the conditions, and on a failed
condition restores the snapshot, undoing any write that another request committed meanwhile.
The contract tests race twenty registrations of one version, and on threaded moto a losing
transaction can so erase the winner (two winners, or none). DynamoDB serialises the writes to an
item and applies a transaction all or nothing; running one request at a time gives moto the
same guarantee. Arguments as for `moto_server`: -H HOST -p PORT.
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    # As moto_server does: some services put their own URL into responses.
    os.environ.setdefault("MOTO_PORT", str(args.port))

    moto = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def app(environ, start_response):
        with one_at_a_time:
            # The whole body is produced inside the lock: a response may be generated lazily.
            return list(moto(environ, start_response))

    # Threaded still, so that idle keep-alive connections never block other clients.
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
