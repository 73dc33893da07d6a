//! Where the answer to one request on a session link goes
//! ([`crate::net::session_link`]): to one waiter (a client's call), or onto
//! a channel shared by many requests under each asker's tag (a replica's
//! run loop, which hears every answer as a fact for its service and had
//! needed a task per request to move each waiter's answer onto its
//! channel).
//!
//! A `Pending` dropped unanswered reports a failed attempt, as a dropped
//! oneshot sender did to its receiver: no asker waits for an answer that
//! will not come.

use tokio::sync::{mpsc, oneshot};

/// An answer: the response frame, or why there will be none.
pub type Answer = Result<Vec<u8>, String>;

/// Tagged answers, for a receiver shared by many requests. Unbounded: a
/// message on it is one `Pending` answered, and askers bound how many of
/// those they keep (a replica's service by its limits on the requests it
/// has out, `kith_core::limits::FORWARDS_PENDING_MAX`).
pub type TaggedAnswers = mpsc::UnboundedSender<(u64, Answer)>;

/// Where one request's answer goes; see the module.
#[derive(Debug)]
pub struct Pending(Option<Route>);

#[derive(Debug)]
enum Route {
    Waiter(oneshot::Sender<Answer>),
    Tagged(u64, TaggedAnswers),
}

impl Pending {
    /// An answer for one waiter, and where it waits.
    pub fn waiter() -> (Pending, oneshot::Receiver<Answer>) {
        let (tx, rx) = oneshot::channel();
        (Pending(Some(Route::Waiter(tx))), rx)
    }

    /// An answer that goes onto `to` under `tag`.
    pub fn tagged(tag: u64, to: &TaggedAnswers) -> Pending {
        Pending(Some(Route::Tagged(tag, to.clone())))
    }

    /// Delivers the answer (to no one if the asker is gone).
    pub fn send(mut self, answer: Answer) {
        self.deliver(answer);
    }

    /// Whether nobody will read the answer any more.
    pub fn is_closed(&self) -> bool {
        match &self.0 {
            Some(Route::Waiter(tx)) => tx.is_closed(),
            Some(Route::Tagged(_, to)) => to.is_closed(),
            None => true,
        }
    }

    fn deliver(&mut self, answer: Answer) {
        match self.0.take() {
            Some(Route::Waiter(tx)) => drop(tx.send(answer)),
            Some(Route::Tagged(tag, to)) => drop(to.send((tag, answer))),
            None => {}
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.deliver(Err("the request was dropped unanswered".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_hears_its_answer_or_that_there_is_none() {
        let (answered, rx) = Pending::waiter();
        answered.send(Ok(b"yes".to_vec()));
        assert_eq!(rx.await.unwrap(), Ok(b"yes".to_vec()));
        let (dropped, rx) = Pending::waiter();
        drop(dropped);
        assert!(rx.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn tagged_answers_share_one_channel_and_a_drop_is_a_failure() {
        let (to, mut rx) = mpsc::unbounded_channel();
        let (first, second) = (Pending::tagged(1, &to), Pending::tagged(2, &to));
        assert!(!first.is_closed());
        drop(second);
        first.send(Ok(b"one".to_vec()));
        assert!(matches!(rx.recv().await, Some((2, Err(_)))));
        assert_eq!(rx.recv().await, Some((1, Ok(b"one".to_vec()))));
        let waiting = Pending::tagged(3, &to);
        drop(rx);
        assert!(waiting.is_closed());
    }
}
