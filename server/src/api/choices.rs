//! The `n` generations of one request read as one stream of `(choice index, step)`, in the
//! order their steps come. Dropping it cancels every generation still running.

use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream, SelectAll};

use super::generation::{Generation, Step};

/// The choices of one request.
pub(crate) struct Choices {
    steps: SelectAll<BoxStream<'static, (u32, Step)>>,
    n: usize,
}

impl std::fmt::Debug for Choices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Choices").field("n", &self.n).finish()
    }
}

impl Choices {
    /// Choice `i` is `generations[i]`.
    pub(crate) fn new(generations: Vec<Generation>) -> Self {
        let n = generations.len();
        let steps = stream::select_all(generations.into_iter().zip(0u32..).map(|(g, i)| {
            stream::unfold(g, |mut g| async move { g.next().await.map(|s| (s, g)) })
                .map(move |s| (i, s))
                .boxed()
        }));
        Self { steps, n }
    }

    /// How many choices.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// The next step of any choice, or `None` when every choice has ended.
    pub(crate) async fn next(&mut self) -> Option<(u32, Step)> {
        self.steps.next().await
    }
}
