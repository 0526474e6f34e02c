"""Services behind the support-loop routes: guidelines enforcement, feedback, the unanswered
queue, staff answers, analytics and retention. Route handlers stay thin and call these."""
