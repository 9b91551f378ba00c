"""The sign-in form."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional


class LoginForm(FlaskForm):
    """Tenant (blank: the host), username or email, password and "remember me"; CSRF-protected."""

    tenant = StringField("Tenant", validators=[Optional(), Length(max=64)],
                         description="Leave blank to sign in to the host.",
                         filters=[lambda value: value.strip() if isinstance(value, str) else value])

    username = StringField("Username or email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField("Remember me")
