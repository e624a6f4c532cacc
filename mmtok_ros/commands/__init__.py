"""Subcommands of ``mmtok``; see ``mmtok_ros/cli.py`` for the module contract."""
