"""One definition, two faces.

authgate writes each multi-step operation once, as a generator that yields what it
needs done (a store call, a Redis command, a hash) and receives the results: no I/O in
the definition.  A *face* is a class that knows how to drive such a generator: a
`SyncFace` runs it and returns the result, an `AsyncFace` awaits the I/O.  `operation`
turns a definition into a method of both: written in a shared base class, it becomes
``gate.login(...)`` on the sync face and ``await gate.login(...)`` on the async one,
with the same parameters and the same docstring, typed for each (mypy sees a plain
method on the one and a coroutine function on the other).

This is what keeps `Gate` and `AsyncGate`, `RedisStore` and `AsyncRedisStore`, and a
local store and its async face from being written twice: adding an operation is one
edit, and the faces cannot drift.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

__all__ = [
    "AsyncFace",
    "Steps",
    "SyncFace",
    "adrive",
    "answered",
    "call_now",
    "deferred",
    "drive",
    "operation",
    "passed_on",
    "returning",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Op = TypeVar("Op")

Steps = Generator[Any, Any, T]


class SyncFace:
    """A class whose operations run to their result when called."""

    def _drive(self, steps: Steps[T], /) -> T:
        raise NotImplementedError


class AsyncFace:
    """A class whose operations are awaited: its I/O never blocks the event loop."""

    async def _drive(self, steps: Steps[T], /) -> T:
        raise NotImplementedError


class _Stepping:
    """One generator's run: its next step, or its result once it is done.  The
    drivers differ only in whether doing a step is awaited."""

    __slots__ = ("done", "step", "steps", "value")

    def __init__(self, steps: Generator[Any, Any, Any]) -> None:
        self.steps = steps
        self.done = False
        self.value: Any = None
        self.step: Any = None
        self.resume(next, steps)

    def resume(self, move: Callable[..., Any], *args: Any) -> None:
        """Move the generator on (start it, send a result in, throw a failure in)."""
        try:
            self.step = move(*args)
        except StopIteration as finished:
            self.done, self.value = True, finished.value


def drive(steps: Generator[Op, Any, T], execute: Callable[[Op], Any]) -> T:
    """Run `steps` to its result, each yielded step done by `execute`.  A step that
    fails is thrown into the generator, which may handle it; the generator is closed
    however the run ends, so its ``finally`` blocks always run."""
    if type(steps) is _Known:
        known: T = steps.value
        return known
    run = _Stepping(steps)
    with contextlib.closing(steps):
        while not run.done:
            try:
                run.resume(steps.send, execute(run.step))
            except Exception as err:  # a failed step, or the flow's own (then re-raised)
                run.resume(steps.throw, err)
    value: T = run.value
    return value


async def adrive(steps: Generator[Op, Any, T], execute: Callable[[Op], Awaitable[Any]]) -> T:
    """`drive`, each step awaited."""
    if type(steps) is _Known:
        known: T = steps.value
        return known
    run = _Stepping(steps)
    with contextlib.closing(steps):
        while not run.done:
            try:
                run.resume(steps.send, await execute(run.step))
            except Exception as err:  # a failed step, or the flow's own (then re-raised)
                run.resume(steps.throw, err)
    value: T = run.value
    return value


def deferred(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Steps[R]:
    """The steps of one plain call, made when the steps are driven (by `call_now`,
    or on a worker thread by an async face)."""
    result: R = yield functools.partial(fn, *args, **kwargs)
    return result


def call_now(thunk: Callable[[], R]) -> R:
    """Do a `deferred` step here and now."""
    return thunk()


def passed_on(method: Callable[Concatenate[Any, P], R], to: str) -> operation[P, R]:
    """An operation done by the object in attribute `to` (a wrapped store), named and
    typed by the protocol method it is: ``get_group = passed_on(Store.get_group,
    "inner")``.  Each face does the call its own way (`deferred`)."""
    name = method.__name__

    def build(face: Any, /, *args: P.args, **kwargs: P.kwargs) -> Steps[R]:
        return deferred(getattr(getattr(face, to), name), *args, **kwargs)

    build.__name__ = name
    build.__doc__ = method.__doc__
    build.__dict__["__signature__"] = inspect.signature(method)
    return operation(build)


class _Known(Generator[Any, Any, T]):
    """Steps already done: an answer known without I/O.  It behaves as a generator
    that returns at once (so ``yield from`` it works), and the drivers and the faces'
    methods hand its value back without driving anything: the cached request path
    stays a plain call."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def send(self, sent: Any, /) -> Any:
        raise StopIteration(self.value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        raise typ if val is None else val


def returning(value: T) -> Steps[T]:
    """Steps that do nothing and return `value` (an answer known without I/O)."""
    return _Known(value)


def answered(steps: Steps[T]) -> T | None:
    """The value of steps already done (`returning`), or None when they must be driven:
    for a caller that drives them itself only when it must (the ASGI middleware)."""
    if type(steps) is _Known:
        value: T = steps.value
        return value
    return None


class operation(Generic[P, R]):
    """A method defined once, as steps, and offered by every face.

    Decorate a method of a base class that returns the steps of the operation; the
    `SyncFace` subclass gets a method returning the result, the `AsyncFace` subclass a
    coroutine function, both with the definition's signature (less ``self``) and
    docstring.  The bound method is made once per instance.
    """

    def __init__(self, build: Callable[Concatenate[Any, P], Steps[R]]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__
        signature = inspect.signature(build)
        self.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, face: None, owner: type) -> operation[P, R]: ...
    @overload
    def __get__(self, face: SyncFace, owner: type) -> Callable[P, R]: ...
    @overload
    def __get__(self, face: AsyncFace, owner: type) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(self, face: Any, owner: type) -> Any:
        if face is None:
            return self
        build, run = self.build, face._drive
        method: Callable[..., Any]
        if isinstance(face, AsyncFace):

            async def method(*args: Any, **kwargs: Any) -> Any:
                steps = build(face, *args, **kwargs)
                return steps.value if type(steps) is _Known else await run(steps)

        else:

            def method(*args: Any, **kwargs: Any) -> Any:
                steps = build(face, *args, **kwargs)
                return steps.value if type(steps) is _Known else run(steps)

        method.__name__ = self.name
        method.__qualname__ = f"{type(face).__qualname__}.{self.name}"
        method.__doc__ = self.__doc__
        method.__dict__["__signature__"] = self.__signature__
        face.__dict__[self.name] = method  # the next lookup finds it on the instance
        return method
