"""The turn order of a load-balancing group's members (tcp and http groups alike)."""

from typing import Generic, Iterator, List, TypeVar

T = TypeVar("T")


class Rotation(Generic[T]):
    """Members in the order they joined; :meth:`next` hands them out in turn, and a member
    that leaves is skipped without resetting whose turn it is."""

    def __init__(self) -> None:
        self._members: List[T] = []
        self._next = 0

    def add(self, member: T) -> None:
        self._members.append(member)

    def remove(self, member: T) -> None:
        index = self._members.index(member)
        del self._members[index]
        if index < self._next:
            self._next -= 1
        if self._next >= len(self._members):
            self._next = 0

    def next(self) -> T:
        """The member whose turn it is; LookupError when there is none."""
        if not self._members:
            raise LookupError("no members")
        member = self._members[self._next]
        self._next = (self._next + 1) % len(self._members)
        return member

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._members))

    def __len__(self) -> int:
        return len(self._members)
