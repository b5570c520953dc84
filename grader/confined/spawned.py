"""The portable sandbox's child: a fresh interpreter that grader/confined/portable.py starts.

    python -s -m grader.confined.spawned      (started by PortableSandbox; not a command for people)

Where the unix sandbox cannot run (no os.fork, no resource limits: Windows; or when asked
for with --sandbox portable), the grader starts this module with its stdin and stdout as
pipes. The first frame from the grader says what to run and under which limits, and
carries the data graded code may read; the child moves the pipes to descriptors of its
own, loads what graded code commonly touches, confines itself as far as the OS allows
(grader/confined/child.py, `confine`: as root, a chroot as nobody), says what held, and
then answers frames exactly as the unix sandbox's child does.
"""

from __future__ import annotations

import os
import traceback

from grader.confined.child import Pipes, confine, serve, warm_up
from grader.confined.wire import exact_reader, unpack
from grader.confined.world import decode_world
from grader.courseware.course import Limits


def main() -> None:
    channel = Pipes(os.dup(0), os.dup(1))
    header, tensors = unpack(exact_reader(channel.recv))
    limits = Limits(float(header["time_s"]), int(header["memory_mb"]))
    world = decode_world(header["world"], tensors)
    scratch = str(header.get("scratch") or os.getcwd())

    def confined() -> dict[str, str]:
        warm_up()  # what student code commonly touches, loaded while loading still works as usual
        return confine(scratch, limits, [channel.read_fd, channel.write_fd], new_session=False)

    serve(channel, header["source"], header["path"], limits=limits, confine=confined, world=world or None)


if __name__ == "__main__":
    status = 0
    debug = os.dup(2) if os.environ.get("NINJA_SANDBOX_DEBUG") else None  # stderr: the grader's debug file
    try:
        main()
    except BaseException:
        status = 70
        if debug is not None:
            os.write(debug, traceback.format_exc().encode())
    finally:
        os._exit(status)
