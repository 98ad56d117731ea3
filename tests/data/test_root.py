"""Data-folder resolution: argument > DML_DATA > repository data/ > ~/.cache/dml, with helpful errors."""
import pytest

from dml.data import build, data_root, root as root_module


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("DML_DATA", raising=False)


def test_argument_wins_over_environment(tmp_path, monkeypatch):
    (tmp_path / "arg").mkdir()
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("DML_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert data_root() == (tmp_path / "env").resolve()


def test_missing_argument_folder_says_where_it_came_from(tmp_path, no_env):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        data_root(missing)
    message = str(info.value)
    assert str(missing) in message and "root= argument" in message and "mkdir" in message


def test_missing_environment_folder_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_DATA", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError) as info:
        data_root()
    message = str(info.value)
    assert str(tmp_path / "typo") in message and "DML_DATA" in message and "unset DML_DATA" in message
    with pytest.raises(FileNotFoundError, match="DML_DATA"):
        build("synthetic", num_classes=4, images_per_class=3, image_size=8)


def test_a_file_is_not_a_data_folder(tmp_path, no_env):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        data_root(tmp_path / "file")


def test_repository_data_folder_is_the_default(tmp_path, monkeypatch, no_env):
    repo_data = tmp_path / "data"
    repo_data.mkdir()
    (repo_data / "README.md").write_text("data")
    monkeypatch.setattr(root_module, "REPO_DATA", repo_data)
    assert data_root() == repo_data


def test_user_cache_when_not_in_a_checkout(tmp_path, monkeypatch, no_env):
    monkeypatch.setattr(root_module, "REPO_DATA", tmp_path / "installed" / "data")
    monkeypatch.setattr(root_module, "USER_CACHE", tmp_path / "home" / ".cache" / "dml")
    assert data_root() == tmp_path / "home" / ".cache" / "dml"
    assert (tmp_path / "home" / ".cache" / "dml").is_dir()


def test_checkout_has_the_documented_data_folder():
    assert (root_module.REPO_DATA / "README.md").is_file()
