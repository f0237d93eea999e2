"""The serial link to a board (docs/serial-protocol.md): ``protocol`` (frames, CRC, the message types),
``transport`` (a serial device, a socket or a QEMU pty), ``feed`` (flow control, credit, loss recovery),
``stream`` (the prediction stream a host script reads, with ``drift``, the live drift monitor), ``linklab``
(the fault-injecting proxy the link tests use).

Imports only contract/ and codegen/ (an export's model and drift reference), never boards, targets,
analysis or search.
"""
