"""Everything the bot says on its own: the presentation of services' events, and the one
paced outbox that sends it.

Services (the balance watcher, the delivery tracker, the bulk runner, ...) decide *that*
something must be said and emit a small event (services/events.py); they import no aiogram.
Here `presenter.Presenter` renders each event in its recipient's language (`texts`, and
`jobs` for a bulk job's progress, pause and result file) with the real CallbackData classes
and keyboards of handlers/, and hands the message to `notifier.Notifier`, which paces every
send, edit and document and handles 429, 403 and group migrations once. Admin notices pass
through `digest.AdminDigest`, which turns a burst of one kind into one message.

The package sits in bot/ rather than handlers/: handlers answer the update in front of them,
while this runs outside any update and owns a Bot-bound, started-and-stopped outbox that the
composition root wires to the services. bot/ may import handlers' CallbackData and keyboards;
handlers and services see only the services.events.Notices protocol.

Nothing is imported here, so importing one module (bot/middlewares.py needs the notifier's
SELF_PACED) does not load the rest.
"""
