"""Framework adapters: ``authgate.integrations.flask``, ``.starlette``, ``.fastapi``.

Each translates its framework's request into the core's terms and the core's answer
back; none holds logic of its own.  Importing one needs that framework installed
(``pip install 'authgate[flask]'`` or ``'authgate[starlette]'``).
"""
