//! Finding where an unframed message ends, incrementally.
//!
//! A buffered-transport peer sends messages back to back; the reader learns a
//! message's length only by walking it. [`Scanner`] walks the values with an explicit
//! stack instead of recursion, and each step either consumes a whole unit (a header,
//! a number, a string) or stops and waits for more bytes without consuming anything,
//! so feeding it a growing buffer costs time proportional to the new bytes only.
//! It checks the maximum message size as soon as a length is known, and the nesting
//! limit, so a hostile stream costs at most `max` buffered bytes.

use crate::protocol::{
    binary, compact, ttype_from_u8, Protocol, ProtocolError, ProtocolErrorKind, TType, MAX_DEPTH,
};

/// A pending piece of work on the scanner's stack.
#[derive(Debug, Clone, Copy)]
enum Task {
    /// A message header (then its body struct).
    Message,
    /// One value of this type.
    Value(TType),
    /// The fields of a struct until STOP.
    Fields,
    /// `left` more values of type `elem`.
    Elems { elem: TType, left: usize },
    /// `left` more entries of a map.
    Entries {
        key: TType,
        value: TType,
        left: usize,
    },
}

/// Incremental message-boundary finder for one connection's unframed stream.
#[derive(Debug)]
pub struct Scanner {
    protocol: Protocol,
    max: usize,
    /// Bytes of the current unit sequence already walked.
    pos: usize,
    stack: Vec<Task>,
    /// Walking a unit that is not kept (see [`Scanner::skipping`]).
    skip: bool,
    /// Whether binary message headers must be strict (see [`Scanner::accept_non_strict`]).
    strict: bool,
}

/// What a step found.
enum Step {
    /// A unit was consumed.
    Done,
    /// The buffer ends before the unit does.
    NeedMore,
}

impl Scanner {
    /// A scanner for `protocol` that refuses messages longer than `max` bytes.
    pub fn new(protocol: Protocol, max: usize) -> Self {
        Scanner {
            protocol,
            max,
            pos: 0,
            stack: Vec::with_capacity(16),
            skip: false,
            strict: true,
        }
    }

    /// Also walks non-strict binary message headers (a name length first, as
    /// `TBinaryProtocol(strict_write=False)` writes them).
    pub fn accept_non_strict(&mut self) {
        self.strict = false;
    }

    /// Whether only strict binary message headers are walked.
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// A scanner that walks a unit which is dropped as it comes, of at most `max`
    /// bytes: a string's (or name's, or number's) bytes need not have arrived, only
    /// the headers around them, and [`Scanner::release`] lets the walked bytes go.
    pub fn skipping(protocol: Protocol, max: usize) -> Self {
        Scanner {
            skip: true,
            ..Scanner::new(protocol, max)
        }
    }

    /// The protocol walked.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Of the `buffered` bytes last fed, how many were walked and may be dropped
    /// from the buffer's front; positions then count from what is left.
    pub fn release(&mut self, buffered: usize) -> usize {
        let walked = self.pos.min(buffered);
        self.pos -= walked;
        walked
    }

    /// Whether `rest` lacks `n` bytes that must be read (not merely skipped).
    fn lacks(&self, rest: &[u8], n: usize) -> bool {
        rest.len() < n && !self.skip
    }

    /// Starts over to find the end of one message.
    pub fn expect_message(&mut self) {
        self.reset(&[Task::Message]);
    }

    /// Starts over to find the end of a bare struct followed by a message (a tracking
    /// request header and its call).
    pub fn expect_struct_then_message(&mut self) {
        self.reset(&[Task::Message, Task::Value(TType::Struct)]);
    }

    /// Forgets the unit being walked: the next one starts from scratch.
    pub fn forget(&mut self) {
        self.stack.clear();
    }

    /// Whether a unit is being walked (started and not yet complete).
    pub fn in_progress(&self) -> bool {
        !self.stack.is_empty()
    }

    fn reset(&mut self, tasks: &[Task]) {
        self.pos = 0;
        self.stack.clear();
        self.stack.extend_from_slice(tasks);
    }

    /// Continues walking `buf`, which holds the stream from the start of the expected
    /// unit (the same bytes as before, plus any that arrived since). Returns the total
    /// length once everything expected is complete, `None` if more bytes are needed.
    pub fn feed(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        while let Some(task) = self.stack.last().copied() {
            let step = match self.protocol {
                Protocol::Binary => self.step_binary(task, buf)?,
                Protocol::Compact => self.step_compact(task, buf)?,
            };
            if let Step::NeedMore = step {
                if buf.len() >= self.max {
                    return Err(self.too_long(buf.len() + 1));
                }
                return Ok(None);
            }
            if self.pos > self.max {
                return Err(self.too_long(self.pos));
            }
        }
        Ok(Some(self.pos))
    }

    #[cold]
    fn too_long(&self, n: usize) -> ProtocolError {
        ProtocolError::new(
            ProtocolErrorKind::SizeLimit,
            format!(
                "unframed message of at least {n} bytes exceeds the maximum of {}",
                self.max
            ),
        )
    }

    /// Replaces the top task with its continuation.
    fn replace_top(&mut self, next: Task) {
        if let Some(top) = self.stack.last_mut() {
            *top = next;
        }
    }

    /// Pushes a child task, refusing nesting deeper than the limit.
    fn push(&mut self, child: Task) -> Result<(), ProtocolError> {
        if self.stack.len() >= 2 * MAX_DEPTH as usize {
            return Err(ProtocolError::new(
                ProtocolErrorKind::DepthLimit,
                format!("values nested deeper than {MAX_DEPTH}"),
            ));
        }
        self.stack.push(child);
        Ok(())
    }

    /// After a container header of `consumed` bytes: the task that walks its elements.
    fn container(&mut self, task: Task, consumed: usize) -> Result<Step, ProtocolError> {
        self.pos += consumed;
        self.replace_top(task);
        Ok(Step::Done)
    }

    /// Advances through elements or entries; shared by both protocols.
    fn step_elems(&mut self, task: Task) -> Result<Step, ProtocolError> {
        self.stack.pop();
        match task {
            Task::Elems { elem, left } if left > 0 => {
                if left > 1 {
                    self.stack.push(Task::Elems {
                        elem,
                        left: left - 1,
                    });
                }
                self.push(Task::Value(elem))?;
            }
            Task::Entries { key, value, left } if left > 0 => {
                if left > 1 {
                    self.stack.push(Task::Entries {
                        key,
                        value,
                        left: left - 1,
                    });
                }
                // Pushed value first so the key is walked first.
                self.push(Task::Value(value))?;
                self.push(Task::Value(key))?;
            }
            _ => {}
        }
        Ok(Step::Done)
    }

    fn step_binary(&mut self, task: Task, buf: &[u8]) -> Result<Step, ProtocolError> {
        let rest = &buf[self.pos.min(buf.len())..];
        let i32_at = |at: usize| -> Option<i32> {
            rest.get(at..at + 4)
                .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        };
        match task {
            Task::Message => {
                let Some(word) = i32_at(0) else {
                    return Ok(Step::NeedMore);
                };
                let need = if (word as u32) & 0xffff_0000 == binary::VERSION_1 {
                    // Version word, name, sequence id.
                    let Some(name_len) = i32_at(4) else {
                        return Ok(Step::NeedMore);
                    };
                    self.checked_len(name_len, 12)?
                } else if !self.strict && word >= 0 {
                    // Name, type byte, sequence id.
                    self.checked_len(word, 9)?
                } else {
                    return Err(ProtocolError::new(
                        ProtocolErrorKind::BadVersion,
                        format!("bad binary message header {:#010x}", word as u32),
                    ));
                };
                if self.lacks(rest, need) {
                    return Ok(Step::NeedMore);
                }
                self.pos += need;
                self.replace_top(Task::Value(TType::Struct));
            }
            Task::Value(t) => {
                let fixed = match t {
                    TType::Bool | TType::I8 => 1,
                    TType::I16 => 2,
                    TType::I32 => 4,
                    TType::I64 | TType::Double => 8,
                    TType::Uuid => 16,
                    TType::String => {
                        let Some(n) = i32_at(0) else {
                            return Ok(Step::NeedMore);
                        };
                        self.checked_len(n, 4)?
                    }
                    TType::Struct => {
                        self.replace_top(Task::Fields);
                        return Ok(Step::Done);
                    }
                    TType::List | TType::Set => {
                        let (Some(&e), Some(n)) = (rest.first(), i32_at(1)) else {
                            return Ok(Step::NeedMore);
                        };
                        let left = self.checked_len(n, 0)?;
                        let elem = ttype_from_u8(e)?;
                        return self.container(Task::Elems { elem, left }, 5);
                    }
                    TType::Map => {
                        let (Some(&k), Some(&v), Some(n)) = (rest.first(), rest.get(1), i32_at(2))
                        else {
                            return Ok(Step::NeedMore);
                        };
                        let left = self.checked_len(n, 0)?;
                        let (key, value) = (ttype_from_u8(k)?, ttype_from_u8(v)?);
                        return self.container(Task::Entries { key, value, left }, 6);
                    }
                    TType::Stop | TType::Void => return Err(bad_value(t)),
                };
                if self.lacks(rest, fixed) {
                    return Ok(Step::NeedMore);
                }
                self.pos += fixed;
                self.stack.pop();
            }
            Task::Fields => {
                let Some(&t) = rest.first() else {
                    return Ok(Step::NeedMore);
                };
                let t = ttype_from_u8(t)?;
                if t == TType::Stop {
                    self.pos += 1;
                    self.stack.pop();
                } else {
                    if rest.len() < 3 {
                        return Ok(Step::NeedMore);
                    }
                    self.pos += 3;
                    self.push(Task::Value(t))?;
                }
            }
            Task::Elems { .. } | Task::Entries { .. } => return self.step_elems(task),
        }
        Ok(Step::Done)
    }

    fn step_compact(&mut self, task: Task, buf: &[u8]) -> Result<Step, ProtocolError> {
        let rest = &buf[self.pos.min(buf.len())..];
        match task {
            Task::Message => {
                let (Some(&id), Some(&vt)) = (rest.first(), rest.get(1)) else {
                    return Ok(Step::NeedMore);
                };
                if id != compact::PROTOCOL_ID || vt & 0x1f != 1 {
                    return Err(ProtocolError::new(
                        ProtocolErrorKind::BadVersion,
                        format!("bad compact message header {id:#04x} {vt:#04x}"),
                    ));
                }
                let Some((_, a)) = varint(&rest[2..])? else {
                    return Ok(Step::NeedMore);
                };
                let Some((n, b)) = varint(&rest[2 + a..])? else {
                    return Ok(Step::NeedMore);
                };
                let need = self.checked_len(n as i64, 2 + a + b)?;
                if self.lacks(rest, need) {
                    return Ok(Step::NeedMore);
                }
                self.pos += need;
                self.replace_top(Task::Value(TType::Struct));
            }
            Task::Value(t) => {
                let used = match t {
                    TType::Bool | TType::I8 => 1,
                    TType::Double => 8,
                    TType::Uuid => 16,
                    TType::I16 | TType::I32 | TType::I64 => match varint(rest)? {
                        Some((_, used)) => used,
                        None => return Ok(Step::NeedMore),
                    },
                    TType::String => match varint(rest)? {
                        Some((n, used)) => self.checked_len(n as i64, used)?,
                        None => return Ok(Step::NeedMore),
                    },
                    TType::Struct => {
                        self.replace_top(Task::Fields);
                        return Ok(Step::Done);
                    }
                    TType::List | TType::Set => {
                        let Some(&head) = rest.first() else {
                            return Ok(Step::NeedMore);
                        };
                        let elem = compact_elem(head & 0x0f)?;
                        if head >> 4 != 15 {
                            return self.container(
                                Task::Elems {
                                    elem,
                                    left: (head >> 4) as usize,
                                },
                                1,
                            );
                        }
                        let Some((n, used)) = varint(&rest[1..])? else {
                            return Ok(Step::NeedMore);
                        };
                        let left = self.checked_len(n as i64, 0)?;
                        return self.container(Task::Elems { elem, left }, 1 + used);
                    }
                    TType::Map => {
                        let Some((n, used)) = varint(rest)? else {
                            return Ok(Step::NeedMore);
                        };
                        let left = self.checked_len(n as i64, 0)?;
                        if left == 0 {
                            self.pos += used;
                            self.stack.pop();
                            return Ok(Step::Done);
                        }
                        let Some(&kv) = rest.get(used) else {
                            return Ok(Step::NeedMore);
                        };
                        let (key, value) = (compact_elem(kv >> 4)?, compact_elem(kv & 0x0f)?);
                        return self.container(Task::Entries { key, value, left }, used + 1);
                    }
                    TType::Stop | TType::Void => return Err(bad_value(t)),
                };
                if self.lacks(rest, used) {
                    return Ok(Step::NeedMore);
                }
                self.pos += used;
                self.stack.pop();
            }
            Task::Fields => {
                let Some(&head) = rest.first() else {
                    return Ok(Step::NeedMore);
                };
                let ctype = head & 0x0f;
                if ctype == 0 {
                    self.pos += 1;
                    self.stack.pop();
                    return Ok(Step::Done);
                }
                let t = compact_elem(ctype)?;
                let mut used = 1;
                if head >> 4 == 0 {
                    match varint(&rest[1..])? {
                        Some((_, n)) => used += n,
                        None => return Ok(Step::NeedMore),
                    }
                }
                self.pos += used;
                // A bool field's value is folded into its header.
                if t != TType::Bool {
                    self.push(Task::Value(t))?;
                }
            }
            Task::Elems { .. } | Task::Entries { .. } => return self.step_elems(task),
        }
        Ok(Step::Done)
    }

    /// A length from the wire plus `extra` header bytes, checked against the maximum
    /// before anything waits for (or allocates) that many bytes.
    fn checked_len(&self, n: impl Into<i64>, extra: usize) -> Result<usize, ProtocolError> {
        let n: i64 = n.into();
        if n < 0 {
            return Err(ProtocolError::new(
                ProtocolErrorKind::NegativeSize,
                format!("negative length {n}"),
            ));
        }
        let total = n as u64 + extra as u64;
        if self.pos as u64 + total > self.max as u64 {
            return Err(self.too_long((self.pos as u64 + total) as usize));
        }
        Ok(total as usize)
    }
}

#[cold]
fn bad_value(t: TType) -> ProtocolError {
    ProtocolError::new(
        ProtocolErrorKind::InvalidData,
        format!("a value cannot have type {t:?}"),
    )
}

/// A compact type nibble as a value type.
fn compact_elem(nibble: u8) -> Result<TType, ProtocolError> {
    Ok(match nibble {
        1 | 2 => TType::Bool,
        3 => TType::I8,
        4 => TType::I16,
        5 => TType::I32,
        6 => TType::I64,
        7 => TType::Double,
        8 => TType::String,
        9 => TType::List,
        10 => TType::Set,
        11 => TType::Map,
        12 => TType::Struct,
        13 => TType::Uuid,
        _ => {
            return Err(ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("unknown compact type {nibble}"),
            ))
        }
    })
}

/// A varint at the start of `b`: its value and length, `None` if incomplete.
fn varint(b: &[u8]) -> Result<Option<(u64, usize)>, ProtocolError> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if b.len() >= 10 {
        return Err(ProtocolError::new(
            ProtocolErrorKind::InvalidData,
            "varint longer than ten bytes",
        ));
    }
    Ok(None)
}
