//! The one-shot user commands.

use crate::cli::{Cli, Command, IdCommand, StatusArg};
use crate::contact_commands;
use crate::render;
use crate::room_commands;
use crate::session::{parse_since, Session};
use crate::settings;
use anyhow::{bail, Context, Result};
use kith_core::im::presence::{PresenceBody, PresenceStatus, SignedPresence};
use kith_core::im::protocol::{Operation, Page, QueryKind, QueryReply, RoomEntry, RoomId, Target};
use kith_core::im::typing::{SignedTyping, TypingBody};
use kith_core::limits;
use kith_core::session::Reply;
use kith_core::wire::client_protocol::ClientRequest;
use kith_io_tokio::client::{now_ms, ClientError};
use kith_io_tokio::key_file::KeyFile;
use serde_json::json;

/// `kith id ...`: local keys only, no network.
pub fn id(cli: &Cli, command: IdCommand) -> Result<()> {
    let home = settings::home(cli.home.as_deref());
    match command {
        IdCommand::New { name } => {
            settings::check_name(&name)?;
            let path = settings::user_key_path(&home, &name);
            let key = KeyFile::create(&path)?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "name": name, "peer_id": key.peer_id().to_string(), "key": path })
                );
            } else {
                println!("created user {name}: {}", key.peer_id());
                println!("key: {}", path.display());
                println!("next: kith --as {name} register");
            }
        }
        IdCommand::Show { name } => {
            settings::check_name(&name)?;
            let key = KeyFile::load(&settings::user_key_path(&home, &name))?;
            if cli.json {
                println!("{}", json!({ "name": name, "peer_id": key.peer_id().to_string() }));
            } else {
                println!("{}", key.peer_id());
            }
        }
        IdCommand::List => {
            let dir = home.join("users");
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter_map(|e| {
                            e.file_name().to_str()?.strip_suffix(".key").map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for name in names {
                let key = KeyFile::load(&settings::user_key_path(&home, &name))?;
                if cli.json {
                    println!("{}", json!({ "name": name, "peer_id": key.peer_id().to_string() }));
                } else {
                    println!("{name}\t{}", key.peer_id());
                }
            }
        }
    }
    Ok(())
}

/// The user commands that need a connection.
pub async fn run(cli: &Cli, command: Command) -> Result<()> {
    let mut s = Session::open(cli).await?;
    match command {
        Command::Register { name } => {
            let name = name.unwrap_or_else(|| s.local_name.clone());
            let receipt = s.submit(Operation::Register { name }).await?;
            render::receipt(cli, &mut s, &receipt).await;
        }
        Command::Room(room) => room_commands::run(cli, &mut s, room).await?,
        Command::Send { room, text } => {
            let room = s.resolve_room(&room).await?;
            let to = s.target_of(room);
            let receipt = s.submit(Operation::Send { to, text }).await?;
            render::receipt(cli, &mut s, &receipt).await;
        }
        Command::Dm { user, text } => {
            let user = s.resolve_user(&user).await?;
            let receipt = s.submit(Operation::Send { to: Target::User(user), text }).await?;
            render::receipt(cli, &mut s, &receipt).await;
        }
        Command::Edit { room, seq, text } => {
            let room = s.resolve_room(&room).await?;
            let receipt = s.submit(Operation::Edit { room, seq, text }).await?;
            render::receipt(cli, &mut s, &receipt).await;
        }
        Command::Delete { room, seq } => {
            let room = s.resolve_room(&room).await?;
            let receipt = s.submit(Operation::Delete { room, seq }).await?;
            render::receipt(cli, &mut s, &receipt).await;
        }
        Command::React { room, seq, reaction, remove } => {
            let room = s.resolve_room(&room).await?;
            let op = Operation::React { room, seq, reaction, add: !remove };
            let receipt = s.submit(op).await?;
            render::receipt(cli, &mut s, &receipt).await;
        }
        Command::History { room, limit, before, since } => {
            history(cli, &mut s, &room, limit, before, since).await?
        }
        Command::Inbox => inbox(cli, &mut s).await?,
        Command::Presence { status, of } => presence(cli, &mut s, status, of).await?,
        Command::Typing { room, stop } => {
            let room = s.resolve_room(&room).await?;
            typing(&mut s, room, !stop).await?;
        }
        c @ (Command::Contacts { .. }
        | Command::Block { .. }
        | Command::Unblock { .. }
        | Command::Reads { .. }) => contact_commands::run(cli, &mut s, c).await?,
        _ => unreachable!("dispatched in main"),
    }
    Ok(())
}

async fn history(
    cli: &Cli,
    s: &mut Session,
    room: &str,
    limit: u32,
    before: Option<u64>,
    since: Option<String>,
) -> Result<()> {
    let room = s.resolve_room(room).await?;
    let since_ms = since.map(|since| parse_since(&since, now_ms())).transpose()?;
    let ask = HistoryAsk {
        limit: limit.max(1) as usize,
        before,
        since_ms,
        page: limits::PAGE_ENTRIES_MAX as u32,
    };
    let entries = collect_history(s, &room, &ask).await?;
    // Who has read up to where: shown under the entry they stopped at.
    let QueryReply::ReadPositions(positions) =
        s.query(QueryKind::ReadPositions { room: room.clone() }).await?
    else {
        bail!("unexpected answer to a read positions query");
    };
    let mut readers: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let me = s.me;
    for (user, seq) in positions.into_iter().filter(|(user, _)| *user != me) {
        let name = s.name_of(user).await;
        readers.entry(seq).or_default().push(name);
    }
    for entry in &entries {
        let read_by = readers.get(&entry.seq).cloned().unwrap_or_default();
        if cli.json {
            let mut v = render::object(s, &room, entry).await;
            v["read_by"] = serde_json::json!(read_by);
            println!("{v}");
        } else {
            println!("{}", render::line(s, &room, entry).await);
            if !read_by.is_empty() {
                println!("     read by {}", read_by.join(", "));
            }
        }
    }
    Ok(())
}

/// Where history pages come from: the replica, or a state machine in tests.
trait Pages {
    async fn page(&mut self, kind: QueryKind) -> Result<Page>;
}

impl Pages for Session {
    async fn page(&mut self, kind: QueryKind) -> Result<Page> {
        match self.query(kind).await? {
            QueryReply::Page(page) => Ok(page),
            _ => bail!("unexpected answer to a history query"),
        }
    }
}

/// What `kith history` asks for.
struct HistoryAsk {
    /// At most this many entries in all, whatever the replica's page size.
    limit: usize,
    /// Only entries with a smaller sequence number.
    before: Option<u64>,
    /// Only entries stamped at or after this time (ms since the epoch).
    since_ms: Option<u64>,
    /// Entries per query (the replica caps it at its own page limit).
    page: u32,
}

/// The entries `ask` names, oldest first: with `since_ms`, the oldest
/// `limit` entries from that time (and before `before`); without it, the
/// newest `limit` entries (before `before`). The replica bounds every page;
/// this follows its cursors until `limit` entries or the end.
async fn collect_history(
    src: &mut impl Pages,
    room: &RoomId,
    ask: &HistoryAsk,
) -> Result<Vec<RoomEntry>> {
    let mut entries = Vec::new();
    let page_size = |got: usize| (ask.limit - got).min(ask.page as usize) as u32;
    let before = ask.before.unwrap_or(u64::MAX);
    let Some(from_ms) = ask.since_ms else {
        // Backwards from `before`: each page is the newest below the cursor.
        let mut cursor = before;
        while entries.len() < ask.limit {
            let limit = page_size(entries.len());
            let kind =
                QueryKind::History { room: room.clone(), after: None, before: Some(cursor), limit };
            let page = src.page(kind).await?;
            let mut older = page.entries;
            older.append(&mut entries);
            entries = older;
            match page.next {
                Some(next) if next < cursor => cursor = next,
                _ => break,
            }
        }
        return Ok(entries);
    };
    // Time and sequence do not mix in one query, but stamps never decrease
    // along a room's log: the first entry at or after `from_ms` turns the
    // time into a sequence number, and sequence pages do the rest, bounded
    // by `before` on the replica.
    let first = QueryKind::HistoryByTime {
        room: room.clone(),
        from_ms,
        to_ms: u64::MAX,
        after: None,
        limit: 1,
    };
    let Some(start) = src.page(first).await?.entries.first().map(|e| e.seq) else {
        return Ok(entries);
    };
    let mut after = start - 1;
    while entries.len() < ask.limit {
        let limit = page_size(entries.len());
        let kind = QueryKind::History {
            room: room.clone(),
            after: Some(after),
            before: Some(before),
            limit,
        };
        let page = src.page(kind).await?;
        entries.extend(page.entries);
        match page.next {
            Some(next) if next > after => after = next,
            _ => break,
        }
    }
    Ok(entries)
}

async fn inbox(cli: &Cli, s: &mut Session) -> Result<()> {
    let mut after = None;
    let mut last_seen = std::collections::BTreeMap::new();
    loop {
        let kind =
            QueryKind::Inbox { after: after.clone(), limit: limits::PAGE_ENTRIES_MAX as u32 };
        let QueryReply::Inbox(page) = s.query(kind).await? else {
            bail!("unexpected answer to an inbox query");
        };
        for (room, entry) in &page.items {
            render::print_entry(s, cli.json, room, entry).await;
            last_seen.insert(room.clone(), entry.seq);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if last_seen.is_empty() && !cli.json {
        println!("nothing unread");
    }
    for (room, seq) in last_seen {
        s.submit(Operation::MarkRead { room, seq }).await.context("marking the inbox read")?;
    }
    Ok(())
}

async fn presence(
    cli: &Cli,
    s: &mut Session,
    status: Option<StatusArg>,
    of: Vec<String>,
) -> Result<()> {
    if let Some(status) = status {
        let status = match status {
            StatusArg::Online => PresenceStatus::Online,
            StatusArg::Away => PresenceStatus::Away,
            StatusArg::Offline => PresenceStatus::Offline,
        };
        announce(s, status).await?;
        if !cli.json {
            println!("you are {}", format!("{status:?}").to_lowercase());
        }
    }
    let mut users = Vec::new();
    for u in &of {
        users.push(s.resolve_user(u).await?);
    }
    if users.is_empty() && status.is_none() {
        users.push(s.me);
    }
    if users.is_empty() {
        return Ok(());
    }
    match s.client.call(ClientRequest::PresenceOf(users)).await? {
        Reply::Presence(list) => {
            for p in list {
                let name = s.name_of(p.user).await;
                let status = format!("{:?}", p.status).to_lowercase();
                if cli.json {
                    println!(
                        "{}",
                        json!({ "user": p.user.to_string(), "name": name, "status": status, "last_seen_ms": p.last_seen_ms })
                    );
                } else {
                    println!("{name}\t{status}");
                }
            }
            Ok(())
        }
        other => bail!("unexpected answer to a presence query: {other:?}"),
    }
}

/// Announces presence with a time-to-live of two minutes.
pub async fn announce(s: &mut Session, status: PresenceStatus) -> Result<()> {
    let body = PresenceBody { status, issued_at_ms: now_ms(), ttl_ms: 120_000 };
    let signed = SignedPresence::sign(s.client.identity(), &body);
    s.client.call(ClientRequest::Presence(signed)).await?;
    Ok(())
}

/// Sends a typing notice for `room`.
pub async fn typing(s: &mut Session, room: RoomId, active: bool) -> Result<()> {
    let body = TypingBody { room, active, issued_at_ms: now_ms() };
    let notice = SignedTyping::sign(s.client.identity(), &body);
    match s.client.call(ClientRequest::Typing(notice)).await {
        Ok(_) => Ok(()),
        // The replica's refusal (say, not a member), as it put it.
        Err(ClientError::Protocol(why)) => bail!("{why}"),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_core::ids::{LogIndex, Term};
    use kith_core::im::identity::Identity;
    use kith_core::im::machine::ImMachine;
    use kith_core::im::protocol::Visibility;
    use kith_core::im::protocol::{CommandBody, ImQuery, SignedCommand, IM_PROTOCOL_VERSION};
    use kith_core::state_machine::{ApplyContext, StateMachine};

    /// A replica in miniature: the real state machine answers the queries.
    struct Replica {
        m: ImMachine,
        who: Identity,
        n: u64,
        asked: usize,
    }

    impl Replica {
        /// Room "r" whose entry `seq` is stamped `seq * 1000` ms: a
        /// `Created` entry, then `messages` messages.
        fn with_messages(messages: u64) -> Replica {
            let who = Identity::from_secret([7; 32]);
            let mut r = Replica { m: ImMachine::default(), who, n: 0, asked: 0 };
            r.run(Operation::Register { name: "ann".into() }, 1000);
            r.run(Operation::CreateRoom { name: "r".into(), visibility: Visibility::Public }, 1000);
            for seq in 2..=messages + 1 {
                let to = Target::Room(room());
                r.run(Operation::Send { to, text: format!("m{seq}") }, seq * 1000);
            }
            r
        }

        fn run(&mut self, op: Operation, stamp_ms: u64) {
            self.n += 1;
            let body = CommandBody {
                version: IM_PROTOCOL_VERSION,
                command_id: uuid::Uuid::from_u128(self.n.into()),
                issued_at_ms: stamp_ms,
                op,
            };
            let at = ApplyContext { index: LogIndex(self.n), term: Term(1), position: 0, stamp_ms };
            let response = self.m.apply(at, SignedCommand::sign(&self.who, &body));
            assert!(response.result.is_ok(), "{:?}", response.result);
        }
    }

    impl Pages for Replica {
        async fn page(&mut self, kind: QueryKind) -> Result<Page> {
            self.asked += 1;
            match self.m.query(&ImQuery { as_user: self.who.user(), kind }) {
                Ok(QueryReply::Page(page)) => Ok(page),
                other => bail!("not a page: {other:?}"),
            }
        }
    }

    fn room() -> RoomId {
        RoomId::Group("r".into())
    }

    fn seqs(
        replica: &mut Replica,
        limit: usize,
        before: Option<u64>,
        since_ms: Option<u64>,
        page: u32,
    ) -> Vec<u64> {
        let ask = HistoryAsk { limit, before, since_ms, page };
        let entries = futures::executor::block_on(collect_history(replica, &room(), &ask));
        entries.unwrap().iter().map(|e| e.seq).collect()
    }

    #[test]
    fn since_and_before_compose_across_pages() {
        let mut r = Replica::with_messages(20);
        // Entries stamped from 4 s on, below seq 9, two per page.
        assert_eq!(seqs(&mut r, 100, Some(9), Some(4000), 2), vec![4, 5, 6, 7, 8]);
        // The oldest `limit` of them.
        assert_eq!(seqs(&mut r, 3, Some(9), Some(4000), 2), vec![4, 5, 6]);
        assert_eq!(seqs(&mut r, 100, None, Some(19_000), 2), vec![19, 20, 21]);
        assert!(seqs(&mut r, 100, Some(4), Some(4000), 2).is_empty());
        assert!(seqs(&mut r, 100, None, Some(99_000), 2).is_empty());
        // Without --since: the newest `limit` below `before`, oldest first.
        assert_eq!(seqs(&mut r, 5, Some(9), None, 2), vec![4, 5, 6, 7, 8]);
        assert_eq!(seqs(&mut r, 3, None, None, 2), vec![19, 20, 21]);
        assert_eq!(seqs(&mut r, 100, Some(3), None, 2), vec![1, 2]);
    }

    #[test]
    fn more_than_the_replicas_page_is_returned_when_asked() {
        // The replica caps every page at PAGE_ENTRIES_MAX; `--limit` above
        // it once returned just one page.
        let total = limits::PAGE_ENTRIES_MAX as u64 + 100;
        let mut r = Replica::with_messages(total);
        let page = limits::PAGE_ENTRIES_MAX as u32;
        let since = seqs(&mut r, limits::PAGE_ENTRIES_MAX + 50, Some(total), Some(2000), page);
        assert_eq!(since, (2..total).take(limits::PAGE_ENTRIES_MAX + 50).collect::<Vec<_>>());
        r.asked = 0;
        let newest = seqs(&mut r, limits::PAGE_ENTRIES_MAX + 50, None, None, page);
        assert_eq!(newest.len(), limits::PAGE_ENTRIES_MAX + 50);
        assert_eq!(newest.last(), Some(&(total + 1)));
        assert!(newest.windows(2).all(|w| w[1] == w[0] + 1), "no gaps, no repeats");
        assert_eq!(r.asked, 2, "in bounded pages");
    }
}
