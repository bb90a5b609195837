"""The kernel's last words: an IPython extension that ``run`` loads in the kernels it starts.

ipykernel sends what the kernel process writes to its file descriptors 1 and 2 (a C library, a
subprocess, ``faulthandler``, ``abort()``'s message) to the notebook through a pipe that a thread
of the kernel reads. When the kernel dies, whatever that thread had not read yet dies with it, and
that is usually the one message that says why. This extension puts a small process of its own
between the descriptors and that pipe: it passes every chunk on, then appends it to a file (the one
named by :data:`ENV_KERNEL_TAIL`), so the notebook's outputs are as before and the file
outlives the kernel. ``run`` shows the file's last lines when the kernel dies.

It imports only the standard library, does nothing unless the variable is set, and does nothing on
Windows. Text a cell writes through ``print`` goes to the notebook by messages, not descriptors:
what the kernel had not sent yet when it died is not in the file.

A cell does not end before the process has passed on what the cell wrote: at the end of each cell
the kernel asks it to, and it answers once ipykernel's thread has read all of it (a barrier), so a
subprocess's output lands in its own cell even when the machine is too loaded to run the process
at once. The kernel waits :data:`BARRIER_WAIT` seconds at most, and stops asking if once it had no
answer.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from typing import Any

ENV_KERNEL_TAIL = "NOTEBOOK_RECORDER_KERNEL_TAIL"

#: Seconds a cell's end waits for the forwarding process to answer its barrier (a process that
#: does not answer in that time, stopped or gone, is asked no more).
BARRIER_WAIT = 5.0

# The forwarding process: argv is the file, the barrier's "SYNC:ACK" descriptors, then
# "READ:WRITE" descriptor pairs. It runs in a session of its own, so the kernel's interrupts (sent to
# its process group) do not reach it, and it ends when every writer of its pipes has gone (the
# kernel and the children it started), removing the file's "copying" mark (see :func:`copying`)
# once all is written. At a barrier it passes on what is waiting (a bounded number of reads: a
# writer that never stops does not hold the cell), waits until the readers of the notebook's pipes
# have taken it all (at most a second), then answers.
_TEE = """
import fcntl, os, select, stat, struct, sys, termios, time
out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
sync, ack = map(int, sys.argv[2].split(":"))
pairs = dict(tuple(map(int, a.split(":"))) for a in sys.argv[3:])
def write(fd, data):
    while data:
        data = data[os.write(fd, data):]
def forward(r):
    data = os.read(r, 65536)
    if not data:
        os.close(r)
        del pairs[r]
        return
    if pairs[r] >= 0:  # the notebook first: its outputs are not delayed by the file
        try:
            write(pairs[r], data)
        except OSError:  # the kernel's end has gone: only the file from now on
            pairs[r] = -1
    write(out, data)
def unread(w):
    try:
        if stat.S_ISFIFO(os.fstat(w).st_mode):
            return struct.unpack("i", fcntl.ioctl(w, termios.FIONREAD, b"\\0" * 4))[0]
    except OSError:
        pass
    return 0
def barrier():
    for r in list(pairs):
        for _ in range(16):
            if r not in pairs or not select.select([r], [], [], 0)[0]:
                break
            forward(r)
    deadline = time.monotonic() + 1
    for w in {w for w in pairs.values() if w >= 0}:
        while unread(w) and time.monotonic() < deadline:
            time.sleep(0.0005)
    try:
        os.write(ack, b".")
    except OSError:
        pass
while pairs:
    for r in select.select([*pairs, *([sync] if sync >= 0 else [])], [], [])[0]:
        if r == sync:
            if os.read(sync, 64):
                barrier()
            else:  # the kernel has gone: no more barriers
                sync = -1
        elif r in pairs:
            forward(r)
os.close(out)
try:
    os.unlink(sys.argv[1] + ".copying")
except OSError:  # the run has ended and removed it
    pass
"""


class _Barrier:
    """The ``post_run_cell`` callback: asks the forwarding process to pass on everything the cell
    wrote and waits for its answer (:data:`BARRIER_WAIT` seconds at most; after one wait in vain,
    it asks no more)."""

    def __init__(self, sync: int, ack: int) -> None:
        self.sync, self.ack, self.owed, self.broken = sync, ack, 0, False

    def __call__(self, result: Any = None) -> None:
        if self.broken:
            return
        try:
            os.write(self.sync, b".")
            self.owed += 1
            deadline = time.monotonic() + BARRIER_WAIT
            while self.owed:  # an interrupted wait leaves answers owed: the next one takes them too
                if not select.select([self.ack], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    self.broken = True
                    return
                answers = os.read(self.ack, 64)
                if not answers:
                    self.broken = True
                    return
                self.owed -= len(answers)
        except OSError:
            self.broken = True


def copying(path: str) -> str:
    """The mark that exists while the forwarding process may still add to the file ``path``: a
    reader waits for it to go (the process catches up after the kernel's death)."""
    return path + ".copying"


def load_ipython_extension(ipython: Any) -> None:
    path = os.environ.get(ENV_KERNEL_TAIL)
    if not path or os.name != "posix":
        return
    pairs = []  # (descriptor, read end, write end, where the descriptor pointed)
    for fd in (1, 2):
        read, write = os.pipe()
        pairs.append((fd, read, write, os.dup(fd)))
    (sync_read, sync_write), (ack_read, ack_write) = os.pipe(), os.pipe()
    mark = copying(path)
    try:
        open(mark, "w").close()  # before the process starts: a kernel that dies at once is waited for
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TEE,
                path,
                f"{sync_read}:{ack_write}",
                *(f"{read}:{target}" for _, read, _, target in pairs),
            ],
            pass_fds=[sync_read, ack_write, *(n for _, read, _, target in pairs for n in (read, target))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:  # no copy, no harm: the kernel runs as it would have
        try:
            os.unlink(mark)
        except OSError:
            pass
        os.close(sync_write)
        os.close(ack_read)
    else:
        for fd, _, write, _ in pairs:
            os.dup2(write, fd)
        ipython.events.register("post_run_cell", _Barrier(sync_write, ack_read))
    os.close(sync_read)
    os.close(ack_write)
    for _, *ends in pairs:
        for end in ends:
            os.close(end)
