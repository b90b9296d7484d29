"""The tuixp terminal UI (Textual). Only this package imports textual."""
