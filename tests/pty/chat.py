#!/usr/bin/env python3
"""Drives `nova chat` in a pseudo-terminal as a person would (crates/cli/tests/it/chat.rs).

usage: chat.py NOVA local|gateway [URL TOKEN]; NOVA_HOME comes from the environment.
Prints the transcript; exits 1 with the reason when the chat does not behave.
"""

import os
import pty
import re
import select
import signal
import sys
import time


class Chat:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.seen = b""

    def expect(self, pattern, timeout=60.0):
        """Waits for `pattern` (a regex over the output since the last match)."""
        rx = re.compile(pattern.encode(), re.S)
        deadline = time.time() + timeout
        while True:
            m = rx.search(self.seen)
            if m:
                got, self.seen = self.seen[: m.end()], self.seen[m.end():]
                sys.stdout.write(got.decode(errors="replace"))
                return got
            left = deadline - time.time()
            if left <= 0:
                fail(f"no {pattern!r} within {timeout} s; the screen ends with {self.seen[-600:]!r}")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    fail(f"the chat ended before {pattern!r}: {self.seen[-600:]!r}")
                self.seen += chunk

    def send(self, text):
        os.write(self.fd, text.encode())

    def exit_code(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                r, _, _ = select.select([self.fd], [], [], 0.2)
                if r:
                    os.read(self.fd, 4096)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        fail("the chat did not exit")


def fail(why):
    print(f"\nFAIL: {why}", flush=True)
    sys.exit(1)


def main():
    nova, mode = sys.argv[1], sys.argv[2]
    argv = [nova, "chat", "--no-pull", "--temperature", "0", "--max-tokens", "300"]
    if mode == "gateway":
        argv += ["--gateway", sys.argv[3], "--token", sys.argv[4]]
    chat = Chat(argv)
    chat.expect(r"nova chat with .*?Ctrl-D to leave")
    chat.expect(r"> ")
    chat.send("/help\r")
    chat.expect(r"/strategy NAME.*?> ")
    if mode == "gateway":
        chat.send("/strategy vote\r")
        chat.expect(r"\(strategy vote\).*?> ")
        chat.send("/fanout 2\r")
        chat.expect(r"\(fanout 2\).*?> ")
        chat.send("/fanout 99\r")
        chat.expect(r"fanout is a number from 1 to 16.*?> ")
    else:
        chat.send("/strategy vote\r")
        chat.expect(r"needs --gateway.*?> ")
    # A question; the answer streams, then the prompt comes back.
    chat.send("What is the capital of France?\r")
    chat.expect(r"Paris.*?> ", timeout=120)
    # Two lines joined by a trailing backslash, then a block between triple quotes.
    chat.send("Name one colour\\\r")
    chat.expect(r"… ")
    chat.send("and one fruit.\r")
    chat.expect(r"\S.*?> ", timeout=120)
    chat.send('"""\r')
    chat.expect(r"… ")
    chat.send("Say hello\r")
    chat.expect(r"… ")
    chat.send("in French.\r")
    chat.expect(r"… ")
    chat.send('"""\r')
    chat.expect(r"\S.*?> ", timeout=120)
    # Ctrl-C stops a long answer; the chat goes on. (A vote picks its answer at the end and
    # sends it whole; race streams the winner's tokens as they come.)
    if mode == "gateway":
        chat.send("/strategy race\r")
        chat.expect(r"\(strategy race\).*?> ")
    chat.send("Write a very long story about a dragon who learns to bake bread.\r")
    # The echo of the line first, then words of the answer: a Ctrl-C typed while the line is
    # still being read would be a keystroke, not a signal.
    chat.expect(r"bake bread\.")
    chat.expect(r"\w+ \w+ \w+ \w+ \w+", timeout=120)
    t = time.time()
    chat.send("\x03")
    chat.expect(r"\[stopped\].*?> ", timeout=15)
    print(f"\n(stopped {time.time() - t:.2f} s after Ctrl-C)")
    # Ctrl-C at the prompt clears the line and says how to leave.
    chat.send("half a line\x03")
    chat.expect(r"Ctrl-D or /exit to leave.*?> ")
    chat.send("/clear\r")
    chat.expect(r"forgotten.*?> ")
    chat.send("/exit\r")
    code = chat.exit_code()
    if code != 0:
        fail(f"exit code {code}")
    print("\nOK")


if __name__ == "__main__":
    main()
