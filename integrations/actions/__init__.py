"""Actions that leave the machine, as the Workspace actor carries them out through the registered
providers (``integrations.registry``); plain modules the Workspace hands its work to:

- ``args``: each action's arguments checked, hashed (what an approval binds to), summarised, scrubbed
- ``seal``, ``ledger``: arguments sealed under what must not change beneath them; the sealed action
  rows (propose, decide, claim, finish), policies and the audit log, through the Store's operations
- ``proposals``: the caps on what sub-agents propose; ``executor``: carrying out one approved action
- ``vault``: sealed credentials and OAuth states, key rotation
- ``providers``: the providers one Workspace holds, their hosts, and the review of pending actions
- ``store``: the Store operations these use, as a Protocol (the Workspace's typed Store handle)
"""
