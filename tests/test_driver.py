"""The one driver loop of every executor (annbench.execute.driver): outcomes recorded as tasks finish,
in any order; the stale-temporary cleanup once per sweep; an exception cancels what still runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from conftest import call

from annbench.cli.run import main as run_main
from annbench.core.results import RunKey, RunResult, Status
from annbench.execute.driver import Finished, drive
from annbench.plan.grid import BuildSetting, RunOptions
from annbench.plan.task import Ended, Task, TaskOutcome
from annbench.store.folder import ResultStore, read_attrs

DATASET = "random-xs-20-euclidean"


class CountingStore(ResultStore):
    """A results folder that counts its stale-temporary cleanups."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.cleanups: list[str | None] = []

    def remove_stale_temporaries(self, dataset: str | None = None) -> int:
        self.cleanups.append(dataset)
        return super().remove_stale_temporaries(dataset)


class Reversed:
    """A fake executor: finishes its tasks last started first, each with the outcome it was given;
    a task whose outcome is ``ok`` "stored" its first run itself (as a child does, with its task id)."""

    def __init__(self, store: ResultStore, outcomes: dict[str, TaskOutcome]) -> None:
        self.store, self.outcomes = store, outcomes
        self.started: list[Task] = []
        self.events: list[str] = []

    def __enter__(self) -> Reversed:
        self.events.append("enter")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.events.append("exit")

    def start(self, task: Task) -> None:
        self.started.append(task)

    def finished(self) -> Iterator[Finished]:
        while self.started:
            task = self.started.pop()
            outcome = self.outcomes[task.task_id]
            if outcome.ok:
                self.store.write(RunResult(task.keys[0], Status.OK, metrics={"recall": 1.0, "qps": 10.0},
                                           attrs={"task_id": task.task_id}))
            yield Finished(task, outcome, {"host": f"host-{task.task_id}"})

    def cancel(self) -> None:
        self.events.append("cancel")


def _task(task_id: str, root: Path, build: int) -> Task:
    options = RunOptions(k=10)
    queries = ({"q": 1}, {"q": 2})
    setting = BuildSetting("fake", {"b": build}, queries)
    keys = tuple(RunKey(DATASET, 10, "fake", False, {"b": build}, q) for q in queries)
    return Task(task_id, DATASET, root / "data.hdf5", "xxh3:0", options, setting, keys, (), root)


def test_driver_records_outcomes_of_tasks_finished_out_of_order(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "results")
    tasks = [_task("first", tmp_path, 1), _task("second", tmp_path, 2), _task("third", tmp_path, 3)]
    outcomes = {"first": TaskOutcome("first", Ended.OK, "finished", tmp_path / "first.log", 0),
                "second": TaskOutcome("second", Ended.TIMEOUT, "timeout: killed", tmp_path / "second.log"),
                "third": TaskOutcome("third", Ended.SIGNAL, "crash: SIGSEGV", tmp_path / "third.log", -11)}
    executor = Reversed(store, outcomes)
    calls: list[tuple[str, TaskOutcome, list[RunResult]]] = []
    results = drive(executor, tasks, store, DATASET, lambda t, o, r: calls.append((t.task_id, o, r)))

    assert [task_id for task_id, _, _ in calls] == ["third", "second", "first"]  # as they finished
    assert all(outcome is outcomes[task_id] for task_id, outcome, _ in calls)
    assert results == [r for _, _, recorded in calls for r in recorded] and len(results) == 6
    assert store.cleanups == [DATASET] and executor.events == ["enter", "exit"]
    for task in tasks:
        stored = [read_attrs(store.path_for(k)) for k in task.keys]
        assert all(a["task_id"] == task.task_id for a in stored)
        if task.task_id == "first":  # the child stored its first run; the second is recorded as missing
            assert [a["status"] for a in stored] == ["ok", "error"]
            assert stored[1]["reason"] == "ok" and stored[1]["error"] == "the child ended without storing this run"
            continue
        outcome = outcomes[task.task_id]
        assert [a["status"] for a in stored] == ["error", "error"]
        assert all(a["reason"] == outcome.reason.value and a["error"] == outcome.message for a in stored)
        assert all(a["host"] == f"host-{task.task_id}" and a["log_path"] == str(outcome.log_path) for a in stored)
        assert all(type(a["reason"]) is str for a in stored)  # a plain string in the file, as before the enum
    assert [r.status for r in results] == ["error"] * 4 + ["ok", "error"]
    assert {r.attrs["reason"] for r in results if r.status == Status.ERROR} == {"signal", "timeout", "ok"}


def test_an_exception_in_the_callback_cancels_the_executor_and_propagates(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "results")
    task = _task("only", tmp_path, 1)
    executor = Reversed(store, {"only": TaskOutcome("only", Ended.EXIT, "exited 1", tmp_path / "l.log", 1)})

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(executor, [task], store, DATASET, interrupt)
    assert executor.events == ["enter", "cancel", "exit"] and store.cleanups == [DATASET]


def _count_cleanups(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    calls: list[str | None] = []
    clean = ResultStore.remove_stale_temporaries

    def counted(self: ResultStore, dataset: str | None = None) -> int:
        calls.append(dataset)
        return clean(self, dataset)

    monkeypatch.setattr(ResultStore, "remove_stale_temporaries", counted)
    return calls


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_stale_temporaries_are_removed_once_per_sweep(executor: str, monkeypatch: pytest.MonkeyPatch,
                                                      data_dir: Path, results_dir: Path) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    calls = _count_cleanups(monkeypatch)
    stale = results_dir / DATASET / "10" / "bruteforce" / ".x.hdf5.999999999.tmp"  # a writer that no longer runs
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    r = call(run_main, "--dataset", DATASET, "--algorithm", "bruteforce", "--runs", 1, "--data-dir", data_dir,
             "--results", results_dir, "--no-plot", "--executor", executor)
    assert r.code == 0, r.err
    assert calls == [DATASET] and not stale.exists()

