"""Built-in filter plugins for mirror, registered under the ``mirror.filters.v1`` entry-point group."""
