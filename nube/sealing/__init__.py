"""Message sealing, shared by every nube process (as ``celery/security/`` is Celery's).

- :mod:`~nube.sealing.keyring`: the AES-256 keys; the newest seals, every one opens.
- :mod:`~nube.sealing.sealer`: the envelope (AES-256-GCM over serialized bytes, bound to its
  task, job and tenant); :mod:`~nube.sealing.replay`: the window and nonce checks.
- :mod:`~nube.sealing.serializer`: the kombu serializers for tasks, results, control and events.
- :mod:`~nube.sealing.celery_hooks`, :mod:`~nube.sealing.control`, :mod:`~nube.sealing.events`:
  Celery's consumer, AMQP, broadcasts and events made to send and accept sealed content only;
  :mod:`~nube.sealing.refusals`: what was refused and why, reported once.
- :mod:`~nube.sealing.setup`: :func:`~nube.sealing.setup.load_security` and
  :func:`~nube.sealing.setup.secure_app`, called once per process (:mod:`nube.bootstrap`).
"""
