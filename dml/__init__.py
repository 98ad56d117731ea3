"""dml: deep metric learning, the package behind the course.

Data flows one way through the subpackages::

    dml.data -> dml.models -> dml.losses -> dml.train -> dml.eval

Each subpackage exposes a registry with ``build(name, **kwargs)`` where that makes sense.
"""

__version__ = "0.1.0"
