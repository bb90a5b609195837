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
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

ENV_KERNEL_TAIL = "NOTEBOOK_RECORDER_KERNEL_TAIL"

# The forwarding process: argv is the file, then "READ:WRITE" descriptor pairs. It runs in a
# session of its own, so the kernel's interrupts (sent to its process group) do not reach it, and
# it ends when every writer of its pipes has gone (the kernel and the children it started),
# removing the file's "copying" mark (see :func:`copying`) once all is written.
_TEE = """
import os, select, sys
out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
pairs = dict(tuple(map(int, a.split(":"))) for a in sys.argv[2:])
def write(fd, data):
    while data:
        data = data[os.write(fd, data):]
while pairs:
    for r in select.select(list(pairs), [], [])[0]:
        data = os.read(r, 65536)
        if not data:
            os.close(r)
            del pairs[r]
            continue
        if pairs[r] >= 0:  # the notebook first: its outputs are not delayed by the file
            try:
                write(pairs[r], data)
            except OSError:  # the kernel's end has gone: only the file from now on
                pairs[r] = -1
        write(out, data)
os.close(out)
try:
    os.unlink(sys.argv[1] + ".copying")
except OSError:  # the run has ended and removed it
    pass
"""


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
    mark = copying(path)
    try:
        open(mark, "w").close()  # before the process starts: a kernel that dies at once is waited for
        subprocess.Popen(
            [sys.executable, "-c", _TEE, path, *(f"{read}:{target}" for _, read, _, target in pairs)],
            pass_fds=[n for _, read, _, target in pairs for n in (read, target)],
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
    else:
        for fd, _, write, _ in pairs:
            os.dup2(write, fd)
    for _, *ends in pairs:
        for end in ends:
            os.close(end)
