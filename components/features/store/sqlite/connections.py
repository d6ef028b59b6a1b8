"""The embedded store's connections: one per thread while the thread lives, given back when it ends.

A worker thread keeps its connection for as long as it lives, so a transaction begun on it is ended
on it. The thread pool retires idle threads and starts new ones; without this, each retired thread's
connection (and its file descriptors) stayed open for the life of the process, until the process ran
out of descriptors and every request failed. When a thread ends, its connection goes back to the pool
for the next thread, or is closed when `max_idle` are already waiting.
"""

import sqlite3
import threading
import weakref
from collections.abc import Callable


class _Lease:
    """Held in one thread's local storage only: collected when the thread ends, which gives the connection back."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection


class ConnectionPool:
    def __init__(self, connect: Callable[[], sqlite3.Connection], max_idle: int) -> None:
        self._connect = connect
        self.max_idle = max_idle
        self._lock = threading.RLock()  # a thread ending while it holds the lock gives its connection back
        self._open: set[sqlite3.Connection] = set()
        self._idle: list[sqlite3.Connection] = []
        self._local = threading.local()

    @property
    def connections(self) -> list[sqlite3.Connection]:
        """Every open connection, in use by a thread or idle."""
        with self._lock:
            return list(self._open)

    def thread_connection(self) -> sqlite3.Connection:
        """The calling thread's connection: an idle one, or a new one, kept until the thread ends."""
        lease = getattr(self._local, "lease", None)
        if lease is None:
            lease = _Lease(self._take())
            weakref.finalize(lease, self._give_back, lease.connection)
            self._local.lease = lease
        return lease.connection

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection = self._connect()
        with self._lock:
            self._open.add(connection)
        return connection

    def _give_back(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            if connection not in self._open:
                return  # the pool was closed since
            reuse = len(self._idle) < self.max_idle and not connection.in_transaction
            if reuse:
                self._idle.append(connection)
            else:
                self._open.discard(connection)
        if not reuse:
            connection.close()

    def close(self) -> None:
        """Close every connection, those threads still hold included; a thread asking again gets a new one."""
        with self._lock:
            connections, self._open, self._idle = self._open, set(), []
            # Dropped once the lock is released: dropping it gives the calling thread's connection back.
            held, self._local = self._local, threading.local()
        for connection in connections:
            connection.close()
        del held
