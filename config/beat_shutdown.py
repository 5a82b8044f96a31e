"""Beat stops on SIGINT / SIGTERM without touching the database inside the signal handler.

Celery's own handler (celery.apps.beat.Beat.install_sync_handler) saves the schedule from inside
the handler, then raises SystemExit. A signal that lands while beat's main thread is in a database
call (the heartbeat written as it publishes, a schedule read) re-enters the same psycopg
connection from the handler: the handler waits for the connection's lock, which the interrupted
query holds, forever, and beat hangs until something kills it (the final save is lost). Two signals
(the terminal's SIGINT to the process group and a launcher's SIGTERM) made it likely. SQLite's
driver runs no Python handler in the middle of a call, so only PostgreSQL showed it.

Here the handler only asks beat to stop. When the signal interrupted beat's sleep between ticks
(the frame is Service.start: nothing is in flight) it raises SystemExit there, at once; otherwise
it sets the shutdown flag and returns, so the interrupted call completes and the loop ends after
this tick (DatabaseScheduler ticks at least every 5 s). Either way Service.start's `finally` saves
the schedule once, outside any handler. Later signals do nothing.
"""

import signal

from celery import beat, signals


def install(service):
    """Replace the SIGINT / SIGTERM handlers of this beat process (see the module docstring)."""
    loop_code = beat.Service.start.__code__

    def stop(signum, frame):
        if service._is_shutdown.is_set():
            return
        service._is_shutdown.set()
        if frame is not None and frame.f_code is loop_code:
            raise SystemExit()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


@signals.beat_init.connect(weak=False, dispatch_uid="config.beat_shutdown")
def _on_beat_init(sender=None, **kwargs):
    # beat_init is sent from Service.start, after Celery installed its own handlers.
    if isinstance(sender, beat.Service):
        install(sender)
