"""Reading recorded bags for the offline runner: one small interface for intact and cut-short recordings.

open_bag(path, typestore) gives a Bag: its connections (rosbags Connection tuples, QoS profiles included),
messages(connections) as (connection, log time ns, raw bytes), deserialize(raw, msgtype), message_count (the
messages a full pass yields, where known) and `loss` (None for an intact bag, else a Loss saying what could not
be read). A Bag also carries `is2` and `typestore` (the bag's own message types), which is what rosbags' bag
converter reads from a reader, so the runner copies connections into its output bag the same way for both.

- An intact bag (rosbag2 folder, .mcap or .db3 file, ROS 1 .bag) is read by rosbags' AnyReader, as before.
- A rosbag2 recording that AnyReader cannot open is salvaged, read-only, when its storage is MCAP or sqlite3.
  That is what a robot leaves after a power loss: an MCAP file without summary or footer that ends in a torn
  record, a .db3 whose last pages were never written, a bag folder without metadata.yaml (rosbag2 writes it
  when the recording closes).
  * MCAP: Foxglove's `mcap` package reads the records in file order (its StreamReader needs no summary); every
    complete chunk is decompressed (zstd / lz4) and CRC-checked where the writer stored a CRC; a damaged chunk
    is skipped and counted; at the torn end the part of the last chunk that is on disk is decompressed and the
    messages complete in it are kept. Schemas (ros2msg / ros2idl) and channels (QoS in their metadata) come
    from the file, so the bag's own types are used, with the given typestore for types it does not define.
  * sqlite3: SQLite refuses a file shorter than its header says; with writable_schema (on a read-only,
    immutable connection: nothing is written) it reads the pages that are there. Messages are read in rowid
    (recording) order until the first missing page; a short page read raises instead of being zero-filled.
    `SELECT count(*)` usually still answers from the b-tree, so the loss is known ("read 4 of 12").
- Where nothing can be read, BagOpenError carries one line naming the problem and what to try.
"""
from __future__ import annotations

import importlib
import logging
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any, Collection, Iterator, cast

if TYPE_CHECKING:
    from rosbags.interfaces import Connection

log = logging.getLogger(__name__)

MCAP_MAGIC = b"\x89MCAP0\r\n"
STORAGE_SUFFIXES = (".mcap", ".db3")
MCAP_HINT = "try `mcap recover IN.mcap -o OUT.mcap` (Foxglove's mcap CLI)"
SQLITE_HINT = ("the pages that hold its tables or first messages are missing: check that the file was copied whole "
               "(and for a .db3-wal file beside it, merge it into a copy first: sqlite3 COPY.db3 'PRAGMA "
               "wal_checkpoint')")
ROS1_HINT = "if the recording was cut short, `rosbag reindex` (ROS 1) rebuilds its index"

RawMessage = tuple["Connection", int, bytes]


class BagOpenError(Exception):
    """Nothing can be read from the bag; str(error) is one line: the file, the problem, what to try."""


@dataclass
class Loss:
    """What a salvaged recording lost. read: messages read; expected: the messages the recording held where
    that is known (metadata.yaml, the sqlite b-tree), else None; details: where and why, one phrase each."""

    source: str
    read: int = 0
    expected: int | None = None
    details: list[str] = field(default_factory=list)

    def describe(self) -> str:
        total = str(self.expected) if self.expected is not None and self.expected >= self.read else "~?"
        return "; ".join([f"{self.source}: read {self.read} of {total} message(s)", *self.details])


class Bag:
    """A readable bag (see the module doc). Subclasses: IntactBag (AnyReader), SalvagedBag."""

    path: Path
    is2: bool
    typestore: Any
    connections: list["Connection"]
    message_count: int | None
    loss: Loss | None

    def messages(self, connections: Collection["Connection"] = ()) -> Iterator[RawMessage]:
        """(connection, log time ns, raw message) in recording order; only `connections` when given."""
        raise NotImplementedError

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


@contextmanager
def open_bag(path: Path, typestore: Any) -> Iterator[Bag]:
    """The bag at `path` (a rosbag2 folder, a .mcap / .db3 file, a ROS 1 .bag) for reading; the input is never
    modified. `typestore` types messages whose definitions the bag does not store. Raises BagOpenError."""
    from rosbags.highlevel import AnyReader

    bag: Bag
    try:
        reader = AnyReader([path], default_typestore=typestore)
        reader.open()
    except Exception as exc:  # any failure of the complete-bag reader: try what is left, record by record
        reason = " ".join(str(a) for a in exc.args) or type(exc).__name__
        bag = _salvage(path, typestore, reason)
    else:
        bag = IntactBag(path, reader)
    try:
        yield bag
    finally:
        bag.close()


# ---------------------------------------------------------------------------------------------- intact bags

class IntactBag(Bag):
    """A bag rosbags' AnyReader opened; a read error in the middle (a damaged chunk) ends the pass with a Loss
    instead of an exception."""

    def __init__(self, path: Path, reader: Any) -> None:
        self.path = path
        self._reader = reader
        self.is2 = bool(reader.is2)
        self.typestore = reader.typestore
        self.connections = list(reader.connections)
        self.message_count = int(reader.message_count)
        self.loss = None

    def messages(self, connections: Collection["Connection"] = ()) -> Iterator[RawMessage]:
        read = 0
        try:
            for item in self._reader.messages(connections):
                read += 1
                yield item
        except Exception as exc:  # rosbags raises several types (ReaderError, apsw errors, ...) mid-file
            expected = None if connections else self.message_count
            self.loss = Loss(self.path.name, read, expected, [f"reading stopped: {exc}"])

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._reader.deserialize(raw, msgtype)

    def close(self) -> None:
        self._reader.close()


# ---------------------------------------------------------------------------------------------- salvage

class _Part:
    """One storage file of a salvaged bag."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loss = Loss(path.name)
        self.readable: int | None = None  # messages a full pass yields, once known

    def scan(self, bag: "SalvagedBag") -> None:
        """Register the file's connections with `bag`; count what can be read where that is cheap."""
        raise NotImplementedError

    def messages(self, bag: "SalvagedBag", wanted: set[int] | None) -> Iterator[RawMessage]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SalvagedBag(Bag):
    """A rosbag2 recording read file by file, record by record (see the module doc)."""

    def __init__(self, path: Path, files: list[Path], default_typestore: Any, expected: int | None,
                 message_compression: bool, notes: list[str]) -> None:
        self.path = path
        self.is2 = True
        self.connections = []
        self._keys: dict[tuple[str, str, str], Any] = {}
        self._definitions: dict[str, Any] = {}
        self._default_typestore = default_typestore
        self._message_compression = message_compression
        self.parts: list[_Part] = []
        self._expected = expected
        self._notes = notes
        self.message_count = None
        try:
            for f in files:
                self.parts.append(_McapPart(f) if f.suffix == ".mcap" else _SqlitePart(f))
                self.parts[-1].scan(self)
        except BaseException:
            self.close()
            raise
        self.typestore = self._make_typestore()
        counts = [part.readable for part in self.parts]
        if all(c is not None for c in counts):
            self.message_count = sum(cast(int, c) for c in counts)
        self.loss = self._combined_loss()

    # -- connections from the files' schemas and channels / topics tables --------------------------------

    def connection(self, topic: str, msgtype: str, serialization_format: str, qos_text: str | list[Any],
                   msgdef: tuple[str, str] | None) -> "Connection":
        """The connection for (topic, type, QoS); the same one for every file of a split bag."""
        from rosbags.interfaces import (Connection, ConnectionExtRosbag2, MessageDefinition,
                                        MessageDefinitionFormat)
        from rosbags.rosbag2.metadata import parse_qos

        if msgdef is not None and msgdef[1] and msgtype not in self._definitions:
            fmt = MessageDefinitionFormat.MSG if msgdef[0] == "ros2msg" else MessageDefinitionFormat.IDL
            self._definitions[msgtype] = MessageDefinition(fmt, msgdef[1])
        key = (topic, msgtype, repr(qos_text))
        conn = self._keys.get(key)
        if conn is None:
            try:
                qos = parse_qos(qos_text)
            except Exception as exc:  # a damaged QoS text: keep the topic, without QoS
                log.warning("%s: topic %s: unreadable QoS profile (%s); copied without QoS", self.path, topic, exc)
                qos = []
            conn = Connection(len(self.connections) + 1, topic, msgtype,
                              self._definitions.get(msgtype, MessageDefinition(MessageDefinitionFormat.NONE, "")),
                              "", 0, ConnectionExtRosbag2(serialization_format, qos), self)
            self._keys[key] = conn
            self.connections.append(conn)
        return conn

    def _make_typestore(self) -> Any:
        """The bag's own definitions, over the default typestore's types (for types the bag does not define)."""
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

        types: dict[str, Any] = dict(self._default_typestore.fielddefs)
        for i, conn in enumerate(self.connections):
            definition = self._definitions.get(conn.msgtype)
            if definition is not None and conn.msgdef != definition:
                self.connections[i] = conn = conn._replace(msgdef=definition)
            try:
                if conn.msgdef.format == MessageDefinitionFormat.MSG:
                    types.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
                elif conn.msgdef.format == MessageDefinitionFormat.IDL:
                    sep = "=" * 80 + "\n"
                    texts = conn.msgdef.data.split(sep)[1:] if conn.msgdef.data.startswith(f"{sep}IDL: ") else \
                        ["\n" + conn.msgdef.data]
                    for text in texts:
                        types.update(get_types_from_idl(text.split("\n", 1)[1]))
            except Exception as exc:  # an unparsable definition: fall back to the default typestore's
                log.warning("%s: cannot parse the stored definition of %s (%s); using the built-in one",
                            self.path, conn.msgtype, exc)
        store = get_typestore(Stores.EMPTY)
        store.register(types)
        return store

    # -- reading -----------------------------------------------------------------------------------------

    def messages(self, connections: Collection["Connection"] = ()) -> Iterator[RawMessage]:
        wanted = {c.id for c in connections if c.owner is self} if connections else None
        for part in self.parts:
            yield from part.messages(self, wanted)
        if wanted is None:
            self.loss = self._combined_loss()

    def decompress(self, data: bytes) -> bytes:
        if not self._message_compression:
            return data
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self.typestore.deserialize_cdr(raw, msgtype)

    def _combined_loss(self) -> Loss:
        if len(self.parts) == 1 and not self._notes:
            loss = self.parts[0].loss
            return Loss(loss.source, loss.read, self._expected if self._expected else loss.expected,
                        list(loss.details))
        read = sum(p.loss.read for p in self.parts)
        expected: int | None = self._expected
        if not expected:
            per_file = [p.loss.expected for p in self.parts]
            expected = sum(cast(int, e) for e in per_file) if all(e is not None for e in per_file) else None
        details = list(self._notes)
        details += [f"{p.path.name}: " + ", ".join(p.loss.details) for p in self.parts if p.loss.details]
        return Loss(self.path.name, read, expected, details)

    def close(self) -> None:
        for part in self.parts:
            part.close()


def _salvage(path: Path, typestore: Any, reason: str) -> SalvagedBag:
    """A SalvagedBag for a rosbag2 recording AnyReader could not open, or BagOpenError."""
    if path.is_file() and path.suffix.lower() == ".bag":
        raise BagOpenError(f"{path}: cannot read this ROS 1 bag: {reason}; {ROS1_HINT}")
    files, expected, message_compression, notes = _storage_files(path, reason)
    log.warning("%s: not readable as a complete bag (%s); reading what is left, record by record", path, reason)
    try:
        bag = SalvagedBag(path, files, typestore, expected, message_compression, notes)
    except _Unreadable as exc:
        raise BagOpenError(f"{exc}; {SQLITE_HINT if exc.sqlite else MCAP_HINT}") from None
    if not bag.connections or all(part.readable == 0 for part in bag.parts):
        hint = SQLITE_HINT if all(f.suffix == ".db3" for f in files) else MCAP_HINT
        what = bag.loss.describe() if bag.loss else reason
        bag.close()
        raise BagOpenError(f"{path}: not one complete message in it ({what}); nothing to segment; {hint}")
    return bag


class _Unreadable(Exception):
    def __init__(self, message: str, sqlite: bool = False) -> None:
        super().__init__(message)
        self.sqlite = sqlite


def _natural_key(p: Path) -> tuple[str, int, str]:
    m = re.match(r"^(.*?)(\d+)$", p.stem)
    return (m.group(1), int(m.group(2)), p.suffix) if m else (p.stem, -1, p.suffix)


def _storage_files(path: Path, reason: str) -> tuple[list[Path], int | None, bool, list[str]]:
    """The storage files of a recording, the message count its metadata.yaml promises (or None), whether
    messages are zstd-compressed one by one, and notes (missing files)."""
    if path.is_file():
        if path.suffix.lower() not in STORAGE_SUFFIXES:
            raise BagOpenError(f"{path}: cannot read this bag: {reason}")
        return [path], None, False, []
    if not path.is_dir():
        raise BagOpenError(f"{path}: no such bag")
    meta: dict[str, Any] | None = None
    notes: list[str] = []
    if (path / "metadata.yaml").is_file():
        try:
            from ruamel.yaml import YAML

            meta = YAML(typ="safe").load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        except Exception as exc:
            notes.append(f"metadata.yaml unreadable ({exc})")
            meta = None
    present = sorted((f for f in path.iterdir() if f.is_file() and f.suffix in STORAGE_SUFFIXES), key=_natural_key)
    if meta is not None and meta.get("relative_file_paths"):  # the recording's order, then any file it lacks
        named = [path / PurePath(str(x)).name for x in meta["relative_file_paths"]]
        files = [f for f in named if f.is_file()] + [f for f in present if f not in named]
        notes += [f"{f.name} (listed in metadata.yaml) is missing" for f in named if not f.is_file()]
    else:
        files = present
    mode = str((meta or {}).get("compression_mode") or "").lower()
    if mode == "file":
        raise BagOpenError(f"{path}: cannot read this bag: {reason}; its files are zstd-compressed whole: "
                           "decompress them (zstd -d) and run `ros2 bag reindex` on the folder first")
    if not files:
        raise BagOpenError(f"{path}: cannot read this bag: {reason} (no .mcap or .db3 file in the folder)")
    kinds = {f.suffix for f in files}
    if len(kinds) > 1:
        raise BagOpenError(f"{path}: cannot read this bag: {reason}; the folder holds both .mcap and .db3 files: "
                           "name one of them")
    expected = (meta or {}).get("message_count")
    return files, int(expected) if isinstance(expected, int) and expected > 0 else None, mode == "message", notes


# ---------------------------------------------------------------------------------------------- MCAP

class _Torn(Exception):
    """A read past the end of the data: the record being read is incomplete."""


class _StrictReader:
    """A read-only stream for mcap's readers: a read that would go past the end raises _Torn instead of
    returning a short record (mcap's parser would otherwise build records from partial data). `pos` counts the
    bytes read."""

    def __init__(self, f: IO[bytes], size: int, pos: int = 0) -> None:
        self._f = f
        self._size = size
        self.pos = pos

    def read(self, n: int = -1) -> bytes:
        if n < 0 or self.pos + n > self._size:
            raise _Torn(self.pos)
        data = self._f.read(n)
        if len(data) != n:
            raise _Torn(self.pos)
        self.pos += n
        return data


_MESSAGE_HEADER = 22  # channel id, sequence, log time, publish time


def _inner_records(data: bytes) -> tuple[list[Any], bool]:
    """Schema, Channel and Message records of a chunk's (decompressed) content, in order; False when the data
    ends in an incomplete or damaged record (the records before it are returned)."""
    from mcap.data_stream import ReadDataStream
    from mcap.opcode import Opcode
    from mcap.records import Channel, Message, Schema

    records: list[Any] = []
    pos, size = 0, len(data)
    view = memoryview(data)
    while pos + 9 <= size:
        opcode = data[pos]
        (length,) = struct.unpack_from("<Q", data, pos + 1)
        end = pos + 9 + length
        if end > size or (opcode == Opcode.MESSAGE and length < _MESSAGE_HEADER):
            return records, False
        body = ReadDataStream(cast(IO[bytes], _StrictReader(BytesIO(view[pos + 9:end]), length)))
        try:
            if opcode == Opcode.MESSAGE:
                records.append(Message.read(body, length))
            elif opcode == Opcode.SCHEMA:
                records.append(Schema.read(body))
            elif opcode == Opcode.CHANNEL:
                records.append(Channel.read(body))
        except (_Torn, UnicodeDecodeError, struct.error):
            return records, False
        pos = end
    return records, pos == size


def _decompress_prefix(compression: str, data: bytes) -> bytes:
    """As much of a torn chunk's content as its first bytes give."""
    try:
        if compression == "":
            return data
        if compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        if compression == "lz4":
            lz4_frame: Any = importlib.import_module("lz4.frame")
            return cast(bytes, lz4_frame.LZ4FrameDecompressor().decompress(data))
    except Exception:  # damaged compressed data: nothing recoverable
        return b""
    return b""


@dataclass
class _McapPass:
    """What one pass over an MCAP file found."""

    messages: int = 0
    chunks: int = 0
    bad_chunks: list[str] = field(default_factory=list)
    damaged_chunks: int = 0  # chunks whose content ends in a damaged record (the records before it are kept)
    end: str = "footer"  # 'footer', 'torn', 'boundary' (ends between records), 'corrupt'
    good: int = 0  # end of the last complete record
    size: int = 0
    data_end: bool = False  # the data section was closed (DataEnd record): only summary / footer are missing
    torn_kind: str = ""
    torn_present: int = 0
    torn_length: int = 0
    torn_recovered: int = -1  # messages kept from a torn chunk; -1: not a chunk
    error: str = ""

    def loss(self, name: str) -> Loss:
        details = []
        if self.data_end and self.end in ("torn", "boundary", "corrupt"):
            details.append(f"the summary and footer are missing or cut (the file ends after byte {self.size}); "
                           "the data section is complete: no message lost")
        elif self.end == "torn":
            what = f"the file ends in a torn {self.torn_kind} record after byte {self.good}"
            if self.torn_length:
                what += f" ({self.torn_present} of its {self.torn_length} bytes are there)"
            if self.torn_recovered > 0:
                what += f": {self.torn_recovered} message(s) recovered from the start of that chunk, the rest lost"
            elif self.torn_recovered == 0:
                what += ": 1 chunk lost"
            elif self.torn_kind == "Message":
                what += ": 1 message lost"
            details.append(what)
        elif self.end == "boundary":
            details.append(f"the file ends after byte {self.good} between records, without summary or footer "
                           "(the recording was not closed; messages after that were never written)")
        elif self.end == "corrupt":
            details.append(f"unreadable record after byte {self.good} ({self.error}); the rest of the file "
                           f"({self.size - self.good} bytes) is skipped")
        if self.bad_chunks:
            details.append(f"{len(self.bad_chunks)} damaged chunk(s) skipped ({self.bad_chunks[0]})")
        if self.damaged_chunks:
            details.append(f"{self.damaged_chunks} chunk(s) end in a damaged record (their earlier messages kept)")
        return Loss(name, self.messages, None, details)


class _McapPart(_Part):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._schemas: dict[int, tuple[str, str, str]] = {}  # id -> name, encoding, text
        self._channels: dict[int, int] = {}  # channel id -> the bag's connection id

    def scan(self, bag: SalvagedBag) -> None:
        for _ in self._pass(bag, None, register=True):
            pass
        self.readable = self.loss.read

    def messages(self, bag: SalvagedBag, wanted: set[int] | None) -> Iterator[RawMessage]:
        return self._pass(bag, wanted, register=False)

    def _pass(self, bag: SalvagedBag, wanted: set[int] | None, register: bool) -> Iterator[RawMessage]:
        from mcap.records import Channel, Message, Schema

        state = _McapPass()
        for record in self._records(state):
            if isinstance(record, Schema):
                self._schemas[record.id] = (record.name, record.encoding, record.data.decode("utf-8", "replace"))
            elif isinstance(record, Channel):
                if register:
                    cid = self._connection(bag, record)
                    if cid is not None:
                        self._channels[record.id] = cid
            elif isinstance(record, Message):
                cid = self._channels.get(record.channel_id)
                if cid is None:  # a channel without schema: not readable
                    continue
                state.messages += 1
                if wanted is None or cid in wanted:
                    yield bag.connections[cid - 1], record.log_time, bag.decompress(record.data)
        self.loss = state.loss(self.path.name)

    def _connection(self, bag: SalvagedBag, channel: Any) -> int | None:
        name, encoding, text = self._schemas.get(channel.schema_id, ("", "", ""))
        if not name:
            log.warning("%s: channel %s has no schema in the file (message type unknown): not read",
                        self.path, channel.topic)
            return None
        msgdef = (encoding, text) if encoding in ("ros2msg", "ros2idl") else None
        qos = channel.metadata.get("offered_qos_profiles", "")
        return bag.connection(channel.topic, name, channel.message_encoding, qos, msgdef).id

    def _records(self, state: _McapPass) -> Iterator[Any]:
        from mcap.exceptions import McapError
        from mcap.records import Chunk, DataEnd, Footer
        from mcap.stream_reader import StreamReader

        size = self.path.stat().st_size
        state.size = size
        with self.path.open("rb") as f:
            if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC[:size]:
                raise _Unreadable(f"{self.path}: not an MCAP file (its first bytes are not the MCAP magic)")
            f.seek(0)
            strict = _StrictReader(f, size)
            state.good = len(MCAP_MAGIC)
            # no record size limit: _StrictReader refuses any read past the end of the file before reading
            stream = StreamReader(cast(IO[bytes], strict), emit_chunks=True, record_size_limit=None)
            records = stream.records
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    state.end = "footer"
                    break
                except _Torn:
                    if strict.pos < len(MCAP_MAGIC):
                        raise _Unreadable(f"{self.path}: the file is shorter than the MCAP magic ({size} bytes)") \
                            from None
                    state.end = "boundary" if size == state.good else "torn"
                    break
                except (McapError, struct.error, ValueError) as exc:  # garbage where a record should be
                    state.end, state.error = "corrupt", str(exc) or type(exc).__name__
                    break
                start, state.good = state.good, strict.pos
                if isinstance(record, Chunk):
                    state.chunks += 1
                    yield from self._chunk_records(record, start, state)
                elif isinstance(record, DataEnd):
                    state.data_end = True
                elif isinstance(record, Footer):
                    continue
                else:
                    yield record
            if state.end == "torn":
                yield from self._torn_tail(f, state)

    def _chunk_records(self, chunk: Any, start: int, state: _McapPass) -> list[Any]:
        from mcap.stream_reader import get_chunk_data_stream

        try:
            stream, length = get_chunk_data_stream(chunk, validate_crc=True)
            data = stream.read(length) if length else b""
            if len(data) != chunk.uncompressed_size:
                raise ValueError(f"{len(data)} bytes after decompression, the chunk says {chunk.uncompressed_size}")
        except Exception as exc:  # CRC mismatch, corrupt compressed data, unknown compression
            state.bad_chunks.append(f"chunk at byte {start}: {exc}")
            return []
        records, clean = _inner_records(data)
        state.damaged_chunks += not clean
        return records

    def _torn_tail(self, f: IO[bytes], state: _McapPass) -> list[Any]:
        """The records complete in the first bytes of a torn chunk; notes what the torn record was."""
        from mcap.opcode import Opcode

        f.seek(state.good)
        head = f.read(9)
        if len(head) < 9:
            state.torn_kind = "record header of a"
            return []
        opcode, (length,) = head[0], struct.unpack("<Q", head[1:])
        state.torn_length, state.torn_present = 9 + length, state.size - state.good
        try:
            state.torn_kind = Opcode(opcode).name.title().replace("_", "")
        except ValueError:
            state.torn_kind = f"unknown (opcode {opcode})"
        if opcode != Opcode.CHUNK:
            return []
        state.torn_recovered = 0
        fixed = f.read(8 + 8 + 8 + 4 + 4)
        if len(fixed) < 32:
            return []
        (name_length,) = struct.unpack_from("<I", fixed, 28)
        compression = f.read(name_length)
        sized = f.read(8)
        if len(compression) < name_length or len(sized) < 8:
            return []
        (data_length,) = struct.unpack("<Q", sized)
        data = f.read(min(data_length, max(state.size - f.tell(), 0)))
        records, _ = _inner_records(_decompress_prefix(compression.decode("utf-8", "replace"), data))
        from mcap.records import Message

        state.torn_recovered = sum(isinstance(r, Message) for r in records)
        return records


# ---------------------------------------------------------------------------------------------- sqlite3

_VFS_NAME = "pointgroup-strict-readonly"
_vfs: Any = None


def _strict_vfs() -> str:
    """Register (once) an SQLite VFS whose short reads raise: a page cut by the end of the file is an error,
    never a page with zeros in place of the missing bytes."""
    global _vfs
    if _vfs is None:
        import apsw

        class StrictFile(apsw.VFSFile):
            def xRead(self, amount: int, offset: int) -> bytes:
                data = super().xRead(amount, offset)
                if len(data) < amount:
                    raise apsw.IOError(f"the file ends inside the page at byte {offset}")
                return data

        class StrictVFS(apsw.VFS):
            def __init__(self) -> None:
                super().__init__(_VFS_NAME, "")

            def xOpen(self, name: Any, flags: Any) -> apsw.VFSFile:
                return StrictFile("", name, flags)

        _vfs = StrictVFS()
    return _VFS_NAME


class _SqlitePart(_Part):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        import apsw

        self._conn: Any = None
        self._topics: dict[int, int] = {}  # topic id -> the bag's connection id
        self._expected: int | None = None
        self._notes: list[str] = []
        try:
            self._conn = apsw.Connection(f"file:{path}?immutable=1",
                                         flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI, vfs=_strict_vfs())
            # accept a file shorter than its header's page count (read-only and immutable: nothing is written)
            self._conn.execute("PRAGMA writable_schema=ON")
        except apsw.Error as exc:
            raise _Unreadable(f"{path}: not a readable sqlite3 database ({exc})", sqlite=True) from None

    def scan(self, bag: SalvagedBag) -> None:
        import apsw

        try:
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(topics)")}
            if not columns:
                raise _Unreadable(f"{self.path}: no topics table (not a rosbag2 sqlite3 bag, or its first pages "
                                  "are lost)", sqlite=True)
            definitions: dict[str, tuple[str, str]] = {}
            tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "message_definitions" in tables:
                for name, encoding, text in self._conn.execute(
                        "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
                    definitions[str(name)] = (str(encoding), str(text))
            qos_column = "offered_qos_profiles" if "offered_qos_profiles" in columns else "''"
            rows = list(self._conn.execute(f"SELECT id, name, type, serialization_format, {qos_column} FROM topics "
                                           "ORDER BY id"))
        except apsw.Error as exc:
            raise _Unreadable(f"{self.path}: the topics cannot be read ({exc})", sqlite=True) from None
        for tid, name, msgtype, fmt, qos in rows:
            self._topics[int(tid)] = bag.connection(str(name), str(msgtype), str(fmt), str(qos or ""),
                                                    definitions.get(str(msgtype))).id
        try:
            self._expected = int(next(iter(self._conn.execute("SELECT count(*) FROM messages")))[0])
        except apsw.Error:
            self._expected = None  # the b-tree pages that count needs are lost too
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.is_file() and wal.stat().st_size:
            self._notes.append(f"{wal.name} beside it is not read (messages still in the write-ahead log)")
        details = []
        try:  # is the first message whole? (a cheap answer to "can anything be read at all")
            if not list(self._conn.execute("SELECT data FROM messages ORDER BY id LIMIT 1")):
                self.readable = 0
        except apsw.Error as exc:
            self.readable = 0
            details.append(f"not one message is complete ({exc})")
        self.loss = Loss(self.path.name, 0, self._expected, details + self._notes)

    def messages(self, bag: SalvagedBag, wanted: set[int] | None) -> Iterator[RawMessage]:
        import apsw

        read, last_id = 0, 0
        details: list[str] = []
        try:
            for rid, tid, stamp, data in self._conn.execute(
                    "SELECT id, topic_id, timestamp, data FROM messages ORDER BY id"):
                read, last_id = read + 1, int(rid)
                cid = self._topics.get(int(tid))
                if cid is not None and (wanted is None or cid in wanted):
                    yield bag.connections[cid - 1], int(stamp), bag.decompress(bytes(data))
        except apsw.Error as exc:
            where = f"after message id {last_id}" if read else "at its first message"
            details.append(f"the database is torn {where} ({exc}); later messages are lost")
        self.loss = Loss(self.path.name, read, self._expected, details + self._notes)
        self.readable = read

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
