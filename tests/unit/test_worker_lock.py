"""Two workers must not share one local state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.worker import DataDirInUse, lock_data_dir


def test_second_lock_on_a_data_dir_is_refused_until_the_first_is_released(tmp_path: Path) -> None:
    first = lock_data_dir(tmp_path / "state")
    with pytest.raises(DataDirInUse, match="give each worker its own --data-dir"):
        lock_data_dir(tmp_path / "state")
    first.close()
    lock_data_dir(tmp_path / "state").close()
