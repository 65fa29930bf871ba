"""(being written)"""

from flask import Blueprint

bp = Blueprint("notifications_api", __name__)
