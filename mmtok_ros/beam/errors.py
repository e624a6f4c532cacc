"""One exception type per failure of the beam data path, each naming the file or the column."""
from __future__ import annotations

from ..errors import InputFileNotFoundError, UserInputError


class BeamDataError(UserInputError):
    """Beam data that cannot be used (the CLI prints the message as one line)."""


class BeamDataNotFoundError(InputFileNotFoundError):
    """A DeepSense folder, scenario CSV or a file a CSV row names that does not exist."""


class PlyError(BeamDataError):
    """A LiDAR ``.ply`` file that this reader cannot parse (header, format or size)."""


class DeepSenseLayoutError(BeamDataError):
    """A scenario CSV without the columns the loader needs, or with unusable values."""
