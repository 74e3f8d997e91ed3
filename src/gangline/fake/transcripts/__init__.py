"""The stream-json sessions the fake CLI replays by default, recorded from the pinned real Claude Code."""
